-- ADD CONSTRAINT ... UNIQUE builds its index under ACCESS EXCLUSIVE: reads and writes
-- of large_email wait for the whole build.
-- migrate:up
ALTER TABLE large_email ADD CONSTRAINT large_email_email_key UNIQUE (email);

-- migrate:down
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_email_key;

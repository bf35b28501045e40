-- ADD CHECK scans every row under ACCESS EXCLUSIVE: reads and writes wait for the scan.
-- migrate:up
ALTER TABLE large_email ADD CONSTRAINT large_email_email_has_at CHECK (email LIKE '%@%');

-- migrate:down
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_email_has_at;

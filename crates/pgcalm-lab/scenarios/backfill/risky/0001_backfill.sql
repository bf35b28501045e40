-- The backfill in the same transaction as the ALTER TABLE: the ADD COLUMN's ACCESS
-- EXCLUSIVE lock is held until the UPDATE of every row commits, so reads and writes
-- wait for the whole backfill.
-- migrate:up
ALTER TABLE large_email ADD COLUMN email_domain text;
UPDATE large_email SET email_domain = split_part(email, '@', 2);

-- migrate:down
ALTER TABLE large_email DROP COLUMN IF EXISTS email_domain;

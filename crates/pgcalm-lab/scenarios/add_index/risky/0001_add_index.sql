-- The seed's risky migration (Django's db_index=True, atomic): a plain CREATE INDEX in
-- the migration's transaction holds a SHARE lock on large_email for the whole build, so
-- every INSERT waits until it commits. Reads are not blocked by the lock itself.
-- migrate:up
CREATE INDEX large_email_email_idx ON large_email (email);

-- migrate:down
DROP INDEX IF EXISTS large_email_email_idx;

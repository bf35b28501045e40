-- DROP INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE and waits for the report query
-- without making anyone queue behind it (lock_timeout and retries bound each wait).
-- migrate:up transaction:false
DROP INDEX CONCURRENTLY IF EXISTS large_email_name_idx;

-- migrate:down transaction:false
CREATE INDEX CONCURRENTLY IF NOT EXISTS large_email_name_idx ON large_email (name);

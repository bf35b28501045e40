-- Build the unique index concurrently (no read or write blocked), then attach it as the
-- constraint: a short ACCESS EXCLUSIVE, bounded by lock_timeout, with no scan.
-- migrate:up transaction:false
CREATE UNIQUE INDEX CONCURRENTLY large_email_email_key ON large_email (email);
ALTER TABLE large_email ADD CONSTRAINT large_email_email_key UNIQUE USING INDEX large_email_email_key;

-- migrate:down transaction:false
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_email_key;
DROP INDEX CONCURRENTLY IF EXISTS large_email_email_key;

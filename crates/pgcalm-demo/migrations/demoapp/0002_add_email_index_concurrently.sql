-- Django's AddIndexConcurrently with atomic = False: builds the index without blocking
-- reads or writes on large_email.
-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx;

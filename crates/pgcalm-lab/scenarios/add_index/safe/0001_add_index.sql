-- The seed's safe migration (AddIndexConcurrently, atomic = False): CREATE INDEX
-- CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS large_email_email_idx;

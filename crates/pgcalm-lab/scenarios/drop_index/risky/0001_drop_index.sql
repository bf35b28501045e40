-- A plain DROP INDEX needs ACCESS EXCLUSIVE on large_email. It is instant once granted,
-- but it queues behind the running report query, and every read and write that arrives
-- after it queues behind it: no lock_timeout, so they wait as long as the report runs.
-- migrate:up
DROP INDEX large_email_name_idx;

-- migrate:down
CREATE INDEX IF NOT EXISTS large_email_name_idx ON large_email (name);

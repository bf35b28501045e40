-- A metadata-only ALTER TABLE, run with no lock_timeout (Django's default). Its ACCESS
-- EXCLUSIVE request waits for the open transaction, and every read and write that
-- arrives after it queues behind it: the lock queue stops the whole app.
-- migrate:up
ALTER TABLE large_email ADD COLUMN note text;

-- migrate:down
ALTER TABLE large_email DROP COLUMN IF EXISTS note;

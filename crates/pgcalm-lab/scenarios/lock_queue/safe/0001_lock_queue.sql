-- The same statement: the safety is in how pgcalm runs it. With lock_timeout (2s) the
-- request gives up before the queue behind it grows long, and the runner retries with
-- jittered backoff until the open transaction is gone.
-- migrate:up
ALTER TABLE large_email ADD COLUMN note text;

-- migrate:down
ALTER TABLE large_email DROP COLUMN IF EXISTS note;

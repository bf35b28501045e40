-- SET NOT NULL scans every row under ACCESS EXCLUSIVE: reads and writes wait.
-- migrate:up
ALTER TABLE large_email ALTER COLUMN verified SET NOT NULL;

-- migrate:down
ALTER TABLE large_email ALTER COLUMN verified DROP NOT NULL;

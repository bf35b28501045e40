-- integer -> bigint is not binary-coercible: PostgreSQL rewrites the table (and its
-- indexes) under ACCESS EXCLUSIVE, so reads and writes wait for the rewrite.
-- migrate:up
ALTER TABLE large_email ALTER COLUMN score TYPE bigint;

-- migrate:down
ALTER TABLE large_email ALTER COLUMN score TYPE integer;

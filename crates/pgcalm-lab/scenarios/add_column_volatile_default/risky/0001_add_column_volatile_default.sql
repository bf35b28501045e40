-- A volatile default (one value per row) rewrites the whole table under ACCESS
-- EXCLUSIVE: reads and writes wait for the rewrite. (A constant default would be
-- metadata only since PostgreSQL 11.)
-- migrate:up
ALTER TABLE large_email ADD COLUMN token uuid DEFAULT gen_random_uuid();

-- migrate:down
ALTER TABLE large_email DROP COLUMN IF EXISTS token;

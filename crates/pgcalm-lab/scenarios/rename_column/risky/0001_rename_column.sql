-- RENAME COLUMN is instant, but the running app still asks for `name`: from the commit
-- on, every read and write of large_email fails until the app is redeployed (here:
-- until the lab rolls the rename back).
-- migrate:up
ALTER TABLE large_email RENAME COLUMN name TO full_name;

-- migrate:down
ALTER TABLE large_email RENAME COLUMN full_name TO name;

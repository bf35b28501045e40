-- Add the column without a default (metadata only), give new rows the default, then fill
-- the old rows in batches of 10,000, each committed on its own: row locks on one batch
-- at a time, never a table lock that blocks reads or writes.
-- migrate:up transaction:false
ALTER TABLE large_email ADD COLUMN token uuid;
ALTER TABLE large_email ALTER COLUMN token SET DEFAULT gen_random_uuid();
DO $$
DECLARE
    batch_start bigint := 0;
    last_id bigint := (SELECT coalesce(max(id), 0) FROM large_email);
BEGIN
    WHILE batch_start < last_id LOOP
        UPDATE large_email SET token = gen_random_uuid()
         WHERE id > batch_start AND id <= batch_start + 10000 AND token IS NULL;
        COMMIT;
        batch_start := batch_start + 10000;
    END LOOP;
END
$$;

-- migrate:down transaction:false
ALTER TABLE large_email DROP COLUMN IF EXISTS token;

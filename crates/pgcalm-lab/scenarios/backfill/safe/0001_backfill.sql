-- The ADD COLUMN commits on its own (metadata only, a moment's lock), then the rows are
-- filled in batches of 10,000, each committed on its own: no table lock is held while
-- rows are written.
-- migrate:up transaction:false
ALTER TABLE large_email ADD COLUMN email_domain text;
DO $$
DECLARE
    batch_start bigint := 0;
    last_id bigint := (SELECT coalesce(max(id), 0) FROM large_email);
BEGIN
    WHILE batch_start < last_id LOOP
        UPDATE large_email SET email_domain = split_part(email, '@', 2)
         WHERE id > batch_start AND id <= batch_start + 10000 AND email_domain IS NULL;
        COMMIT;
        batch_start := batch_start + 10000;
    END LOOP;
END
$$;

-- migrate:down transaction:false
ALTER TABLE large_email DROP COLUMN IF EXISTS email_domain;

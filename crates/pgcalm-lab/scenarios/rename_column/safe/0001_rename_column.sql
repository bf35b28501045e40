-- The expand half of expand/contract: add full_name, keep it equal to name with a
-- trigger (both ways, so old and new app versions can run side by side), and fill it in
-- committed batches. The running app keeps using `name`. The contract half (drop the
-- trigger and `name`) belongs after the app has been redeployed to use full_name.
-- migrate:up transaction:false
ALTER TABLE large_email ADD COLUMN full_name varchar(100);
CREATE FUNCTION lab_sync_full_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.full_name := coalesce(NEW.full_name, NEW.name);
        NEW.name := coalesce(NEW.name, NEW.full_name);
    ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
        NEW.full_name := NEW.name;
    ELSIF NEW.full_name IS DISTINCT FROM OLD.full_name THEN
        NEW.name := NEW.full_name;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER lab_sync_full_name BEFORE INSERT OR UPDATE ON large_email
    FOR EACH ROW EXECUTE FUNCTION lab_sync_full_name();
DO $$
DECLARE
    batch_start bigint := 0;
    last_id bigint := (SELECT coalesce(max(id), 0) FROM large_email);
BEGIN
    WHILE batch_start < last_id LOOP
        UPDATE large_email SET full_name = name
         WHERE id > batch_start AND id <= batch_start + 10000 AND full_name IS NULL;
        COMMIT;
        batch_start := batch_start + 10000;
    END LOOP;
END
$$;

-- migrate:down transaction:false
DROP TRIGGER IF EXISTS lab_sync_full_name ON large_email;
DROP FUNCTION IF EXISTS lab_sync_full_name();
ALTER TABLE large_email DROP COLUMN IF EXISTS full_name;

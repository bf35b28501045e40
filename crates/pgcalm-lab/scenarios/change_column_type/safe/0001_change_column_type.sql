-- Expand/contract: a new bigint column kept in step by a trigger, filled in committed
-- batches, then swapped in with a short ACCESS EXCLUSIVE (bounded by lock_timeout) that
-- drops the old column and renames the new one. No rewrite under a table lock.
-- migrate:up transaction:false
ALTER TABLE large_email ADD COLUMN score_new bigint DEFAULT 0;
CREATE FUNCTION lab_sync_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.score_new := NEW.score;
    RETURN NEW;
END
$$;
CREATE TRIGGER lab_sync_score BEFORE INSERT OR UPDATE OF score ON large_email
    FOR EACH ROW EXECUTE FUNCTION lab_sync_score();
DO $$
DECLARE
    batch_start bigint := 0;
    last_id bigint := (SELECT coalesce(max(id), 0) FROM large_email);
BEGIN
    WHILE batch_start < last_id LOOP
        UPDATE large_email SET score_new = score
         WHERE id > batch_start AND id <= batch_start + 10000
           AND score_new IS DISTINCT FROM score;
        COMMIT;
        batch_start := batch_start + 10000;
    END LOOP;
END
$$;
DO $$
BEGIN
    DROP TRIGGER lab_sync_score ON large_email;
    ALTER TABLE large_email DROP COLUMN score;
    ALTER TABLE large_email RENAME COLUMN score_new TO score;
END
$$;
DROP FUNCTION lab_sync_score();

-- migrate:down transaction:false
DROP TRIGGER IF EXISTS lab_sync_score ON large_email;
DROP FUNCTION IF EXISTS lab_sync_score();
ALTER TABLE large_email DROP COLUMN IF EXISTS score_new;
ALTER TABLE large_email ALTER COLUMN score TYPE integer;

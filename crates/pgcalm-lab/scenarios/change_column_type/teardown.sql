DROP TRIGGER IF EXISTS lab_sync_score ON large_email;
DROP FUNCTION IF EXISTS lab_sync_score();
ALTER TABLE large_email DROP COLUMN IF EXISTS score_new;
ALTER TABLE large_email DROP COLUMN IF EXISTS score;

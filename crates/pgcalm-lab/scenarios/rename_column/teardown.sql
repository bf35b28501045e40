DROP TRIGGER IF EXISTS lab_sync_full_name ON large_email;
DROP FUNCTION IF EXISTS lab_sync_full_name();
ALTER TABLE large_email DROP COLUMN IF EXISTS full_name;

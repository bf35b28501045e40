-- NOT VALID: a short ACCESS EXCLUSIVE without a scan; VALIDATE scans under SHARE UPDATE
-- EXCLUSIVE, which blocks no reads or writes.
-- migrate:up transaction:false
ALTER TABLE large_email ADD CONSTRAINT large_email_email_has_at CHECK (email LIKE '%@%') NOT VALID;
ALTER TABLE large_email VALIDATE CONSTRAINT large_email_email_has_at;

-- migrate:down transaction:false
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_email_has_at;

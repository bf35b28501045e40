ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_verified_not_null;
ALTER TABLE large_email DROP COLUMN IF EXISTS verified;

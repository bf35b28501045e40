ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_email_has_at;

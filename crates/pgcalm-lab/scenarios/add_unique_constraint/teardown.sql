ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_email_key;
DROP INDEX IF EXISTS large_email_email_key;

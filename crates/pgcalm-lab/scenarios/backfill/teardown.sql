ALTER TABLE large_email DROP COLUMN IF EXISTS email_domain;

ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_domain_fk;
ALTER TABLE large_email DROP COLUMN IF EXISTS domain_id;
DROP TABLE IF EXISTS lab_domain;

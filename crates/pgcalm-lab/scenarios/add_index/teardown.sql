DROP INDEX IF EXISTS large_email_email_idx;

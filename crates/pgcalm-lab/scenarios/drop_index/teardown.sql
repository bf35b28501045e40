DROP INDEX IF EXISTS large_email_name_idx;

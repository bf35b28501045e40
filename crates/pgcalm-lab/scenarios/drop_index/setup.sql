-- An index to drop. While the forms run, the lab keeps a slow report query reading
-- large_email on its own connection (ACCESS SHARE held for its whole run).
CREATE INDEX IF NOT EXISTS large_email_name_idx ON large_email (name);

-- The seed's risky migration (proj03_indexes: Django's plain AddIndex), as the SQL it runs.
CREATE INDEX large_email_email_idx ON large_email (email);

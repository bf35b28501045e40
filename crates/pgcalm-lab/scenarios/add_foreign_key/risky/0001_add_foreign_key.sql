-- ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on large_email and lab_domain and checks
-- every row before it commits: writes to both tables wait for the whole scan.
-- migrate:up
ALTER TABLE large_email ADD CONSTRAINT large_email_domain_fk
    FOREIGN KEY (domain_id) REFERENCES lab_domain (id);

-- migrate:down
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_domain_fk;

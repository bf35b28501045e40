-- NOT VALID adds the constraint for new rows only (a short lock, no scan); VALIDATE
-- checks the existing rows under SHARE UPDATE EXCLUSIVE, which blocks no reads or writes.
-- migrate:up transaction:false
ALTER TABLE large_email ADD CONSTRAINT large_email_domain_fk
    FOREIGN KEY (domain_id) REFERENCES lab_domain (id) NOT VALID;
ALTER TABLE large_email VALIDATE CONSTRAINT large_email_domain_fk;

-- migrate:down transaction:false
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_domain_fk;

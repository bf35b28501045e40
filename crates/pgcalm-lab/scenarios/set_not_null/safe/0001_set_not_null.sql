-- The seed's sister project's safe way: a CHECK added NOT VALID (no scan), validated
-- under SHARE UPDATE EXCLUSIVE (no read or write blocked); SET NOT NULL then uses the
-- valid check instead of scanning (PostgreSQL 12+), and the check is dropped.
-- migrate:up transaction:false
ALTER TABLE large_email ADD CONSTRAINT large_email_verified_not_null
    CHECK (verified IS NOT NULL) NOT VALID;
ALTER TABLE large_email VALIDATE CONSTRAINT large_email_verified_not_null;
ALTER TABLE large_email ALTER COLUMN verified SET NOT NULL;
ALTER TABLE large_email DROP CONSTRAINT large_email_verified_not_null;

-- migrate:down transaction:false
ALTER TABLE large_email ALTER COLUMN verified DROP NOT NULL;
ALTER TABLE large_email DROP CONSTRAINT IF EXISTS large_email_verified_not_null;

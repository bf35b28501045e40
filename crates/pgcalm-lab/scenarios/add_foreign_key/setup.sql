-- A referenced table and a referencing column (a constant default: metadata only).
CREATE TABLE IF NOT EXISTS lab_domain (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO lab_domain VALUES (1, 'example.com') ON CONFLICT DO NOTHING;
ALTER TABLE large_email ADD COLUMN IF NOT EXISTS domain_id integer DEFAULT 1;

-- A nullable column with no NULLs in it (a constant default: metadata only).
ALTER TABLE large_email ADD COLUMN IF NOT EXISTS verified boolean DEFAULT false;

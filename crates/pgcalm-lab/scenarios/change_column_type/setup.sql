-- An integer column to widen (a constant default: metadata only).
ALTER TABLE large_email ADD COLUMN IF NOT EXISTS score integer DEFAULT 0;

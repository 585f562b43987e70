-- What people change of a call through the API (CallRail's call update): its tags (a JSON
-- array of names), a note, its value (a decimal amount), its lead status; spam calls are kept
-- but left out of listings. The caller's name, when changed, is `caller_name`.
ALTER TABLE calls ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE calls ADD COLUMN note TEXT;
ALTER TABLE calls ADD COLUMN value TEXT;
ALTER TABLE calls ADD COLUMN lead_status TEXT;
ALTER TABLE calls ADD COLUMN spam INTEGER NOT NULL DEFAULT 0;

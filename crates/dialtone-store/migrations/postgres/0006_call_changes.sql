-- What people change of a call through the API (CallRail's call update): its tags (a JSON
-- array of names), a note, its value (a decimal amount), its lead status; spam calls are kept
-- but left out of listings. The caller's name, when changed, is `caller_name`.
ALTER TABLE calls ADD COLUMN tags jsonb NOT NULL DEFAULT '[]';
ALTER TABLE calls ADD COLUMN note text;
ALTER TABLE calls ADD COLUMN value text;
ALTER TABLE calls ADD COLUMN lead_status text;
ALTER TABLE calls ADD COLUMN spam boolean NOT NULL DEFAULT false;

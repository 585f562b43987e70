-- DNI: visitor sessions and their leases on pool numbers, and what calls were attributed to.
-- Session ids are handed out in increasing order by the server, so this table only appends;
-- the secret half of a session's public id is checked against `secret`.
CREATE TABLE dni_sessions (
    id          INTEGER PRIMARY KEY,
    secret      TEXT NOT NULL,
    account     TEXT NOT NULL,
    company     TEXT NOT NULL,
    tracker     TEXT NOT NULL,
    number      TEXT NOT NULL,
    visitor     TEXT NOT NULL,
    visit       TEXT NOT NULL,
    sharing     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    -- The lease's end: its expiry while renewed, or when it was released.
    expires_at  TEXT NOT NULL,
    released    INTEGER NOT NULL DEFAULT 0
);
-- A pool has few numbers and sessions start in time order: this index appends per number.
CREATE INDEX dni_sessions_by_number ON dni_sessions (number, created_at);

-- The visitor a call was attributed to (JSON: session, visitor, visit, shared_with) and whether
-- the caller was calling the company for the first time.
ALTER TABLE calls ADD COLUMN attribution TEXT;
ALTER TABLE calls ADD COLUMN first_call INTEGER;

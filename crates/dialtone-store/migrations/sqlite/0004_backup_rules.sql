-- Operator backup routing rules: which calls go straight to their company's primary number,
-- why, and until when. Ended rules are kept (ended_at) as the record of what was done.
CREATE TABLE backup_rules (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,          -- JSON: {"kind": "all" | "tier" | "company" | "tracker", ...}
    percent INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    ended_at TEXT
);

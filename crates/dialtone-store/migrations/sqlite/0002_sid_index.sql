-- Call and leg sids are random. A unique index on them put every new call on a random page of
-- that index, and so wrote one more 4 KiB page to the WAL (and again at checkpoint) per call: more
-- than half the cost of logging a call. Rows now find each other by integer ids, which grow with
-- time and so only append. The sid -> id map lives in `call_sids`, which the writer fills in large
-- sorted merges (see sqlite.rs); sids newer than `call_sids_merged_through` are kept in memory and
-- reloaded from `calls` at startup.
CREATE TABLE calls_v2 (
    id                    INTEGER PRIMARY KEY,
    sid                   TEXT NOT NULL,
    account               TEXT NOT NULL,
    company               TEXT NOT NULL,
    tracker               TEXT NOT NULL,
    tracker_kind          TEXT NOT NULL,
    carrier_account_sid   TEXT NOT NULL,
    tracking_number       TEXT NOT NULL,
    caller                TEXT NOT NULL,
    caller_name           TEXT,
    forwarded_from        TEXT,
    flow                  TEXT NOT NULL,
    path                  TEXT NOT NULL DEFAULT '[]',
    routing               TEXT NOT NULL,
    routing_reason        TEXT,
    started_at            TEXT NOT NULL,
    first_answer_at       TEXT,
    ended_at              TEXT,
    status                TEXT,
    outcome               TEXT NOT NULL,
    answered              INTEGER NOT NULL DEFAULT 0,
    answered_by           TEXT,
    duration_s            INTEGER,
    recording_url         TEXT,
    recording_duration_s  INTEGER,
    notice_played         INTEGER NOT NULL DEFAULT 0,
    voicemail             INTEGER NOT NULL DEFAULT 0,
    voicemail_url         TEXT,
    voicemail_duration_s  INTEGER
);
INSERT INTO calls_v2 SELECT * FROM calls;
DROP TABLE calls;
ALTER TABLE calls_v2 RENAME TO calls;
CREATE INDEX calls_by_account_time ON calls (account, started_at DESC);

CREATE TABLE call_sids (
    sid      TEXT PRIMARY KEY,
    call_id  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO call_sids (sid, call_id) SELECT sid, id FROM calls;

CREATE TABLE store_meta (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO store_meta (key, value)
    VALUES ('call_sids_merged_through', coalesce((SELECT max(id) FROM calls), 0));

-- Legs belong to their call by id; (call_id, sid) is unique and, ids growing, appends.
CREATE TABLE legs_v2 (
    id            INTEGER PRIMARY KEY,
    call_id       INTEGER NOT NULL,
    sid           TEXT NOT NULL,
    to_number     TEXT NOT NULL,
    status        TEXT NOT NULL,
    initiated_at  TEXT,
    ringing_at    TEXT,
    answered_at   TEXT,
    completed_at  TEXT,
    duration_s    INTEGER
);
INSERT INTO legs_v2 (call_id, sid, to_number, status, initiated_at, ringing_at, answered_at, completed_at, duration_s)
    SELECT c.id, l.sid, l.to_number, l.status, l.initiated_at, l.ringing_at, l.answered_at, l.completed_at, l.duration_s
    FROM legs l JOIN calls c ON c.sid = l.call_sid;
DROP TABLE legs;
ALTER TABLE legs_v2 RENAME TO legs;
CREATE UNIQUE INDEX legs_by_call ON legs (call_id, sid);

-- The call log: events are the record; calls and legs are projections kept in the same transaction.
-- Events point at their call by the call row's rowid, not by sid: sids are random, so an index
-- on them dirties a random page per event, while rowids grow and their index only appends.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    call_sid  TEXT NOT NULL,
    call_id   INTEGER,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX events_by_call ON events (call_id, id);

CREATE TABLE calls (
    id                    INTEGER PRIMARY KEY,
    sid                   TEXT NOT NULL UNIQUE,
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
CREATE INDEX calls_by_account_time ON calls (account, started_at DESC);

CREATE TABLE legs (
    sid           TEXT PRIMARY KEY,
    call_sid      TEXT NOT NULL,
    to_number     TEXT NOT NULL,
    status        TEXT NOT NULL,
    initiated_at  TEXT,
    ringing_at    TEXT,
    answered_at   TEXT,
    completed_at  TEXT,
    duration_s    INTEGER
);
CREATE INDEX legs_by_call ON legs (call_sid);

-- API keys are stored as SHA-256 of the key: keys are random and long, so no salt is needed.
CREATE TABLE api_keys (
    hash        TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    admin       INTEGER NOT NULL,
    label       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE round_robin (
    key    TEXT PRIMARY KEY,
    turns  INTEGER NOT NULL
);

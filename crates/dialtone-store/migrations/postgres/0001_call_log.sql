-- dialtone on PostgreSQL: the same call log as on SQLite (events are the record; calls and legs
-- are projections written in the same transaction), with PostgreSQL's own types: timestamptz,
-- jsonb, boolean. Rows find each other by sid, so one commit's statements can all be sent at
-- once (pipelined) without waiting for ids.

-- Outcome of a call from what its row knows so far: `Outcome::at_end` and `refresh_outcome` in
-- the SQLite backend, the same rule (checked by the store's conformance tests on both).
CREATE FUNCTION dialtone_outcome(status text, ended boolean, answered boolean, voicemail boolean)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ended AND status IS NOT NULL THEN
            CASE WHEN answered THEN 'answered'
                 WHEN voicemail THEN 'voicemail'
                 WHEN status = 'completed' THEN 'missed'
                 ELSE 'failed' END
        WHEN answered THEN 'answered'
        ELSE 'in_progress'
    END
$$;

CREATE TABLE calls (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid                   text COLLATE "C" NOT NULL UNIQUE,
    account               text NOT NULL,
    company               text NOT NULL,
    tracker               text NOT NULL,
    tracker_kind          text NOT NULL,
    carrier_account_sid   text NOT NULL,
    tracking_number       text NOT NULL,
    caller                text NOT NULL,
    caller_name           text,
    forwarded_from        text,
    flow                  text NOT NULL,
    path                  jsonb NOT NULL DEFAULT '[]',
    routing               text NOT NULL,
    routing_reason        text,
    started_at            timestamptz NOT NULL,
    first_answer_at       timestamptz,
    ended_at              timestamptz,
    status                text,
    outcome               text NOT NULL,
    answered              boolean NOT NULL DEFAULT false,
    answered_by           text,
    duration_s            integer,
    recording_url         text,
    recording_duration_s  integer,
    notice_played         boolean NOT NULL DEFAULT false,
    voicemail             boolean NOT NULL DEFAULT false,
    voicemail_url         text,
    voicemail_duration_s  integer,
    dial_shape            text,
    attribution           jsonb,
    first_call            boolean
);
-- Listings, newest first, and their keyset cursor (started_at, sid).
CREATE INDEX calls_by_account_time ON calls (account, started_at DESC, sid DESC);

-- An event for a call never received (a stray callback) is kept with no call_id.
CREATE TABLE events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_sid  text COLLATE "C" NOT NULL,
    call_id   bigint,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    body      jsonb NOT NULL
);
CREATE INDEX events_by_call ON events (call_id, id);

CREATE TABLE legs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id       bigint NOT NULL,
    sid           text COLLATE "C" NOT NULL,
    to_number     text NOT NULL,
    status        text NOT NULL,
    initiated_at  timestamptz,
    ringing_at    timestamptz,
    answered_at   timestamptz,
    completed_at  timestamptz,
    duration_s    integer,
    UNIQUE (call_id, sid)
);

-- API keys are stored as SHA-256 of the key: keys are random and long, so no salt is needed.
CREATE TABLE api_keys (
    hash        text PRIMARY KEY,
    account     text NOT NULL,
    admin       boolean NOT NULL,
    operator    boolean NOT NULL DEFAULT false,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE round_robin (
    key    text PRIMARY KEY,
    turns  bigint NOT NULL
);

-- Operator backup routing rules; ended rules are kept (ended_at) as the record of what was done.
CREATE TABLE backup_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       jsonb NOT NULL,
    percent     integer NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_by  text NOT NULL,
    ended_at    timestamptz
);

-- DNI visitor sessions and their leases on pool numbers; ids are handed out by the server.
CREATE TABLE dni_sessions (
    id          bigint PRIMARY KEY,
    secret      text NOT NULL,
    account     text NOT NULL,
    company     text NOT NULL,
    tracker     text NOT NULL,
    number      text NOT NULL,
    visitor     text NOT NULL,
    visit       jsonb NOT NULL,
    sharing     integer NOT NULL,
    created_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL,
    -- The lease's end: its expiry while renewed, or when it was released.
    expires_at  timestamptz NOT NULL,
    released    boolean NOT NULL DEFAULT false
);
CREATE INDEX dni_sessions_by_number ON dni_sessions (number, created_at);
CREATE INDEX dni_sessions_by_expiry ON dni_sessions (expires_at);

-- What one node of several must do once (an alert raised) or alone (a pool number handed to a
-- visitor): the first to claim a key holds it until `until`; its owner (a node, a DNI session)
-- may claim it again to extend it, or give it up.
CREATE TABLE dialtone_claims (
    key    text COLLATE "C" PRIMARY KEY,
    owner  bigint NOT NULL,
    until  timestamptz NOT NULL
);

-- DNI session ids, unique across nodes: each node takes a block of 100 at a time.
CREATE SEQUENCE dni_session_ids INCREMENT BY 100;
SELECT setval('dni_session_ids', (SELECT coalesce(max(id), 0) + 1 FROM dni_sessions));

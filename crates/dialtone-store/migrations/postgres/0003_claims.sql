-- What one node of several must do once (an alert raised): the first to claim a key holds it
-- until `until`.
CREATE TABLE dialtone_claims (
    key    text COLLATE "C" PRIMARY KEY,
    node   bigint NOT NULL,
    until  timestamptz NOT NULL
);

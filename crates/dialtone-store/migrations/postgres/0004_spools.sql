-- What each node's local spool file (events kept on its own disk while the database was
-- unreachable) has had written back: the last line's number, committed with those lines, so a
-- node that restarts writes the rest of its file and nothing twice. One row per spool file.
CREATE TABLE dialtone_spools (
    id       text COLLATE "C" PRIMARY KEY,
    written  bigint NOT NULL
);

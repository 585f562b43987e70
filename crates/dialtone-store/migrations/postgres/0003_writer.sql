-- Each node's writer records the id of its last commit in the commit itself: after a commit
-- whose answer was lost (the connection failed during COMMIT), the next commit reads it back to
-- know whether those events were written, so they are never written twice.
CREATE TABLE dialtone_writer (
    writer       bigint PRIMARY KEY,
    last_commit  bigint NOT NULL
);

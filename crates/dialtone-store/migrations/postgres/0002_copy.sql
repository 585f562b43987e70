-- `dialtone migrate --from sqlite://… --to postgres://…`: how far the copy of each source's
-- events has come, committed with the events it copied, so an interrupted copy resumes there.
CREATE TABLE dialtone_copy (
    source          text PRIMARY KEY,
    events_through  bigint NOT NULL
);

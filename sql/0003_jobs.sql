-- Durable jobs (large evaluation runs now, experiments later): the input is stored with
-- the job, so it outlives the process that accepted it, and any process may claim it
-- (FOR UPDATE SKIP LOCKED on Postgres; SQLite has one writer). A running job's worker
-- refreshes `heartbeat_at`; a job whose heartbeat stopped is claimed again, up to
-- `max_attempts` times, then failed with its reason.
CREATE TABLE jobs (
    id           TEXT   PRIMARY KEY,
    kind         TEXT   NOT NULL,   -- evaluation | …
    input        TEXT   NOT NULL,   -- JSON, read by the kind's handler
    status       TEXT   NOT NULL,   -- queued | running | succeeded | failed
    attempts     BIGINT NOT NULL,   -- claims so far
    max_attempts BIGINT NOT NULL,
    worker       TEXT,              -- the process holding it while running
    heartbeat_at BIGINT,            -- Unix seconds
    error        TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX jobs_claimable ON jobs (status, created_at);

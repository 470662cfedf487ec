-- audiorec schema. Portable SQL: the same migration runs on PostgreSQL and SQLite.
-- Timestamps are Unix seconds (BIGINT); JSON documents are TEXT.

CREATE TABLE tracks (
    idx      BIGINT PRIMARY KEY,          -- row of every backend's embedding matrix
    track_id TEXT   NOT NULL UNIQUE
);

CREATE TABLE users (
    user_id    TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- One row per (user, track): first listen and play count (the paper's aggregation).
CREATE TABLE plays (
    user_id    TEXT   NOT NULL,
    track_idx  BIGINT NOT NULL,
    first_ts   BIGINT NOT NULL,
    play_count BIGINT NOT NULL,
    PRIMARY KEY (user_id, track_idx)
);
CREATE INDEX plays_by_user_time ON plays (user_id, first_ts);

-- Listens appended through the API, keyed by (user, track, time) so that a retried
-- batch is not counted twice.
CREATE TABLE listens (
    user_id   TEXT   NOT NULL,
    track_idx BIGINT NOT NULL,
    ts        BIGINT NOT NULL,
    PRIMARY KEY (user_id, track_idx, ts)
);

CREATE TABLE eval_runs (
    id          TEXT   PRIMARY KEY,
    model       TEXT   NOT NULL,
    backend     TEXT   NOT NULL,
    k           BIGINT NOT NULL,
    parameters  TEXT   NOT NULL,
    status      TEXT   NOT NULL,   -- pending | running | succeeded | failed
    users       BIGINT NOT NULL,
    metrics     TEXT,              -- aggregate metrics with half-widths (JSON)
    error       TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT,
    seconds     DOUBLE PRECISION
);
CREATE INDEX eval_runs_by_time ON eval_runs (created_at);

CREATE TABLE eval_user_metrics (
    run_id     TEXT   NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    user_label TEXT   NOT NULL,
    hit_rate   DOUBLE PRECISION NOT NULL,
    recall     DOUBLE PRECISION NOT NULL,
    prec       DOUBLE PRECISION NOT NULL,
    mrr        DOUBLE PRECISION NOT NULL,
    ndcg       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, position)
);

-- Experiment grids: one row per experiment (its configuration and the report header:
-- manifest, backends, split counts) and one per finished cell. A cell's per-user metrics
-- are two evaluation runs (validation and test) in eval_runs / eval_user_metrics.

CREATE TABLE experiments (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    config      TEXT   NOT NULL,   -- the experiment's configuration (JSON)
    header      TEXT   NOT NULL,   -- manifest, backends, split counts (JSON)
    status      TEXT   NOT NULL,   -- running | succeeded | failed
    error       TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE experiment_cells (
    experiment_id  TEXT   NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    cell           TEXT   NOT NULL,   -- model/variant/backend
    position       BIGINT NOT NULL,   -- order in the plan
    result         TEXT   NOT NULL,   -- curve, timings, index recall (JSON)
    validation_run TEXT   NOT NULL REFERENCES eval_runs (id),
    test_run       TEXT   NOT NULL REFERENCES eval_runs (id),
    finished_at    BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, cell)
);

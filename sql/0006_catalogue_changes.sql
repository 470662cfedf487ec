-- Tracks added and withdrawn through the API after the import. An added track also gets
-- a row in `tracks` (its index and id, unique with the imported ones). Every change takes
-- the next `seq`; each service instance applies the changes in `seq` order, at start-up
-- and by polling, so replicas agree on every track's index.

CREATE TABLE catalogue_changes (
    seq       BIGINT PRIMARY KEY,
    track_idx BIGINT NOT NULL,
    kind      TEXT   NOT NULL,   -- add | withdraw
    details   TEXT,              -- add: source, duration, tags (JSON)
    at        BIGINT NOT NULL
);

-- An added track's row per backend: little-endian float32 values, hex-encoded (portable
-- text on both databases).
CREATE TABLE track_rows (
    track_idx BIGINT NOT NULL,
    backend   TEXT   NOT NULL,
    row_hex   TEXT   NOT NULL,
    PRIMARY KEY (track_idx, backend)
);

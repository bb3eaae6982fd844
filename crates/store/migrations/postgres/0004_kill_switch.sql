-- Simian tracker schema, version 4 (postgres): the kill switch as set through the API, one row per
-- change (who, when, why); the newest row is in force, together with [monkey] enabled.
CREATE TABLE kill_switch (
    id              BIGSERIAL PRIMARY KEY,
    at_ms           BIGINT  NOT NULL,
    enabled         BOOLEAN NOT NULL,
    changed_by      TEXT    NOT NULL,
    reason          TEXT    NOT NULL
);

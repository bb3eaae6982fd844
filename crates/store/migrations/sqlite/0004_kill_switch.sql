-- Simian tracker schema, version 4 (sqlite): the kill switch as set through the API, one row per
-- change (who, when, why); the newest row is in force, together with [monkey] enabled.
CREATE TABLE kill_switch (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    enabled         BOOLEAN NOT NULL,
    changed_by      TEXT    NOT NULL,
    reason          TEXT    NOT NULL
);

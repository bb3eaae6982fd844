-- Simian tracker schema, version 2 (SQLite): leases, faults with a deadline (a paused
-- container), recorded before the fault is made and ended when it is undone.
CREATE TABLE leases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    termination_id  INTEGER REFERENCES terminations(id),
    provider        TEXT    NOT NULL,
    instance_id     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,               -- NULL while the fault is in place
    ending          TEXT                   -- how it ended
);
CREATE INDEX leases_open ON leases (ended_at_ms, deadline_ms);

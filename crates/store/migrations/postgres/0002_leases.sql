-- Simian tracker schema, version 2 (PostgreSQL): leases, faults with a deadline (a paused
-- container), recorded before the fault is made and ended when it is undone.
CREATE TABLE leases (
    id              BIGSERIAL PRIMARY KEY,
    termination_id  BIGINT REFERENCES terminations(id),
    provider        TEXT    NOT NULL,
    instance_id     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    deadline_ms     BIGINT  NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    ended_at_ms     BIGINT,                -- NULL while the fault is in place
    ending          TEXT                   -- how it ended
);
CREATE INDEX leases_open ON leases (ended_at_ms, deadline_ms);

-- Simian tracker schema, version 3 (postgres): drills (Chaos Gorilla, Chaos Kong), each recorded
-- with its plan before anything is touched; the terminations and leases a drill makes point
-- at it; a lease keeps what its undo needs (memo) and when the undo started.
CREATE TABLE drills (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT    NOT NULL,      -- gorilla | kong
    target          TEXT    NOT NULL,      -- the zone or region
    mode            TEXT    NOT NULL,      -- terminate | pause | isolate
    dry_run         BOOLEAN NOT NULL,
    options         TEXT    NOT NULL,      -- JSON, as given
    plan            TEXT    NOT NULL,      -- JSON
    zones           TEXT    NOT NULL,      -- comma-separated: every zone it touches
    started_at_ms   BIGINT  NOT NULL,
    deadline_ms     BIGINT  NOT NULL,
    ended_at_ms     BIGINT,                -- NULL while it runs
    ending          TEXT,
    detail          TEXT,
    report          TEXT,                  -- JSON: the probes' figures
    owner           TEXT    NOT NULL       -- the simian running it: BOOT_ID/PID@START
);
CREATE INDEX drills_running ON drills (ended_at_ms);
ALTER TABLE leases ADD COLUMN drill_id BIGINT REFERENCES drills(id);
ALTER TABLE leases ADD COLUMN memo TEXT;
ALTER TABLE leases ADD COLUMN undo_at_ms BIGINT;
ALTER TABLE terminations ADD COLUMN drill_id BIGINT REFERENCES drills(id);
CREATE INDEX leases_drill ON leases (drill_id);
CREATE INDEX terminations_drill ON terminations (drill_id);

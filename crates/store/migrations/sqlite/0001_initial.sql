-- Simian tracker schema, version 1 (SQLite). Times are UTC epoch milliseconds; dates are
-- local dates in the configured time zone, as YYYY-MM-DD.
CREATE TABLE schedules (
    date        TEXT    PRIMARY KEY,
    seed        INTEGER NOT NULL,           -- u64 seed stored as its i64 bit pattern
    made_at_ms  INTEGER NOT NULL
);
CREATE TABLE schedule_entries (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    date     TEXT    NOT NULL REFERENCES schedules(date),
    time_ms  INTEGER NOT NULL,
    app      TEXT    NOT NULL,
    account  TEXT    NOT NULL,
    region   TEXT,                          -- NULL: any region
    stack    TEXT,                          -- NULL: any stack
    cluster  TEXT,                          -- NULL: any cluster
    status   TEXT    NOT NULL DEFAULT 'pending'
);
CREATE INDEX schedule_entries_due ON schedule_entries (status, time_ms);
CREATE TABLE terminations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_entry  INTEGER UNIQUE REFERENCES schedule_entries(id),
    recorded_at_ms  INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    instance_id     TEXT    NOT NULL,
    app             TEXT    NOT NULL,
    account         TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    zone            TEXT    NOT NULL,
    stack           TEXT    NOT NULL,
    cluster         TEXT    NOT NULL,
    provider        TEXT    NOT NULL,
    dry_run         BOOLEAN NOT NULL,
    state           TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT '',
    origin          TEXT    NOT NULL
);
CREATE INDEX terminations_app_time ON terminations (app, recorded_at_ms);
CREATE INDEX terminations_time ON terminations (recorded_at_ms);
CREATE TABLE refusals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    app             TEXT    NOT NULL,
    account         TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    stack           TEXT    NOT NULL,
    cluster         TEXT    NOT NULL,
    instance_id     TEXT,
    check_name      TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    dry_run         BOOLEAN NOT NULL,
    schedule_entry  INTEGER REFERENCES schedule_entries(id),
    origin          TEXT    NOT NULL
);
CREATE INDEX refusals_time ON refusals (at_ms);

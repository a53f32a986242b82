-- Tandem collector store, version 1.
-- Applied by src/store.rs inside one transaction; PRAGMA user_version records the version reached.

-- One row per event_id, ever: the UNIQUE constraint plus INSERT OR IGNORE is the exactly-once rule.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    event_name      TEXT    NOT NULL,
    event_time      INTEGER NOT NULL,          -- Unix seconds, from the tag
    client_id       TEXT    NOT NULL,
    received_at_ms  INTEGER NOT NULL,          -- collector clock
    payload         TEXT    NOT NULL,          -- the event object as validated (JSON)
    context         TEXT    NOT NULL           -- HTTP request context: ip, user agent, cookies (JSON)
);
CREATE INDEX events_by_time ON events (event_time);
CREATE INDEX events_by_name_time ON events (event_name, event_time);

-- The durable outbox: one row per (event, platform), written in the same transaction as the event.
CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY,
    event_rowid         INTEGER NOT NULL REFERENCES events (id),
    platform            TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  INTEGER NOT NULL,
    last_status         INTEGER,               -- HTTP status of the last attempt, if any
    last_error          TEXT,                  -- kept for dead rows and retries
    sent_at_ms          INTEGER,
    UNIQUE (event_rowid, platform)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at_ms) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';

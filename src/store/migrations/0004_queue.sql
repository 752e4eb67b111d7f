-- The queue: a run may wait for its environment (status 'queued', holding
-- none; env_id 0 while a label run waits for any environment that fits).
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- JSON array of labels asked for instead of an env id, or NULL.
ALTER TABLE runs ADD COLUMN labels TEXT;
-- A queued run waiting past this moment (ms since the epoch) ends cancelled.
ALTER TABLE runs ADD COLUMN queue_deadline_ms INTEGER;
-- Kept up to date by the scheduler on every queue event (never by the clock).
ALTER TABLE runs ADD COLUMN queue_position INTEGER;
ALTER TABLE runs ADD COLUMN eta TEXT;
-- The queue in order: highest priority first, then first come, first served.
CREATE INDEX runs_queue ON runs(priority DESC, id) WHERE status = 'queued';
-- Durations of recent runs of a path on an environment (ETAs).
CREATE INDEX runs_path_env ON runs(path, env_id, id);

-- Environments taken out of service by hand (or by quarantine).
CREATE TABLE env_state (
    env_id          INTEGER PRIMARY KEY,
    disabled_reason TEXT,
    disabled_at     TEXT,
    enabled_at      TEXT
);

-- Environments reserved by hand: queued (waiting behind the holder and the
-- queue), active (only its owner's runs are admitted), ended.
CREATE TABLE reservations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    env_id      INTEGER NOT NULL,
    username    TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL,
    duration_s  INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    since       TEXT,
    until       TEXT,
    until_ms    INTEGER,
    ended_at    TEXT
);
-- At most one active reservation per environment, enforced here.
CREATE UNIQUE INDEX reservations_one_active ON reservations(env_id) WHERE status = 'active';
CREATE INDEX reservations_open ON reservations(status, id) WHERE status != 'ended';

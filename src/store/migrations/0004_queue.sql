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

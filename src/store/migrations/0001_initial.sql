-- Runs and their output, one row per line.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT    NOT NULL,
    env_id      INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    exit_code   INTEGER,
    timeout_s   INTEGER NOT NULL,
    line_count  INTEGER NOT NULL DEFAULT 0,
    -- 1 while the run holds its environment (created, running, or still stopping).
    holds_env   INTEGER NOT NULL DEFAULT 1,
    -- Process group of an embedded run, and its leader's start time (/proc stat field 22).
    pgid        INTEGER,
    pgid_start  INTEGER
);

-- One run per environment, enforced here rather than by luck.
CREATE UNIQUE INDEX runs_one_per_env ON runs(env_id) WHERE holds_env = 1;
CREATE INDEX runs_status ON runs(status);

CREATE TABLE log_lines (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    line   INTEGER NOT NULL,
    text   TEXT    NOT NULL,
    PRIMARY KEY (run_id, line)
) WITHOUT ROWID;

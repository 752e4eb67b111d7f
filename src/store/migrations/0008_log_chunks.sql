-- A finished run's output, compacted: zstd chunks of consecutive lines
-- (`first_line .. first_line + line_count`), which replace its rows of
-- log_lines in the same transaction (see src/store/chunks.rs for the payload).
CREATE TABLE log_chunks (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    first_line INTEGER NOT NULL,
    line_count INTEGER NOT NULL,
    -- The payload's size before compression.
    raw_bytes  INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    UNIQUE (run_id, first_line)
);

-- 1 once retention (--keep-logs-days) dropped the run's output.
ALTER TABLE runs ADD COLUMN logs_pruned INTEGER NOT NULL DEFAULT 0;

-- Per-test results and what a run asked pytest for (PRODUCT.md "Results and
-- verdicts"). Run columns stay NULL for runs made before this version.
-- summary: JSON {"passed","failed","error","skipped","xfailed","xpassed","total","final"}.
ALTER TABLE runs ADD COLUMN summary TEXT;
-- pytest's exit code in words, set when the run ends (NULL for cancelled, timeout, unknown).
ALTER TABLE runs ADD COLUMN outcome TEXT;
-- The project directory's git state when the run started (NULL outside git).
ALTER TABLE runs ADD COLUMN revision_commit TEXT;
ALTER TABLE runs ADD COLUMN revision_dirty INTEGER;
ALTER TABLE runs ADD COLUMN rerun_of INTEGER;
-- JSON array of node ids run in place of the path, or NULL.
ALTER TABLE runs ADD COLUMN select_ids TEXT;
ALTER TABLE runs ADD COLUMN keyword TEXT;
ALTER TABLE runs ADD COLUMN markers TEXT;
-- Why a finished run has only its live counts (JUnit file missing, truncated, refused), or NULL.
ALTER TABLE runs ADD COLUMN results_note TEXT;

-- One row per test of a run, in the order pytest ran them (seq from 0).
CREATE TABLE test_results (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    nodeid     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    duration_s REAL,
    message    TEXT,
    line       INTEGER,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
-- A test's history and verdict windows: newest runs of one node id first.
CREATE INDEX test_results_nodeid ON test_results(nodeid, run_id DESC);

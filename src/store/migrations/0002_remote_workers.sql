-- Remote workers: who holds a run, the hash of its newest token, its lease,
-- and the command it was dispatched with.
ALTER TABLE runs ADD COLUMN worker TEXT;
ALTER TABLE runs ADD COLUMN token_hash TEXT;
ALTER TABLE runs ADD COLUMN lease_until_ms INTEGER;
ALTER TABLE runs ADD COLUMN command TEXT;
CREATE INDEX runs_username ON runs(username);
CREATE INDEX runs_env ON runs(env_id);

-- Remote dispatch: when the run's newest message was put on the Redis stream
-- (NULL while it still has to be published, e.g. Redis was down or lost it).
ALTER TABLE runs ADD COLUMN published_ms INTEGER;

-- A run whose output could not all be stored (the database refused writes
-- for too long): the first line not stored. NULL normally.
ALTER TABLE runs ADD COLUMN lines_lost_from INTEGER;

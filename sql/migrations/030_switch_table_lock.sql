-- PostgreSQL: a version switch takes the request table's lock (SHARE ROW EXCLUSIVE, which every
-- insert's ROW EXCLUSIVE lock waits for; sql/postgres/deploy.sql) instead of an advisory lock
-- that each insert took in a <table>_lock trigger, which the runtime's upgrade drops. Recorded
-- as a migration so that an older indb refuses this catalog: its switches would take only the
-- advisory lock, which inserts no longer take. The tables do not change.
COMMENT ON TABLE indb.deployments IS 'Which model version scores inserts into which request table. A switch updates its row holding the request table''s lock (PostgreSQL: SHARE ROW EXCLUSIVE, which every insert waits for).';

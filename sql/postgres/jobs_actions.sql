-- PostgreSQL versions of sql/jobs_actions.sql statements that change rows: a DELETE or INSERT
-- there returns no row, so each is wrapped in a CTE that counts what it changed.

-- name: archive_predictions
WITH changed AS (
    INSERT INTO {archive} SELECT * FROM {predictions} AS p
    WHERE p.id >= $low AND p.id < $high AND p.scored_at < $cutoff
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: delete_predictions
WITH changed AS (
    DELETE FROM {predictions} AS p WHERE p.id >= $low AND p.id < $high AND p.scored_at < $cutoff
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: archive_ground_truth
WITH changed AS (
    INSERT INTO {archive} SELECT * FROM {ground_truth} AS g
    WHERE g.id >= $low AND g.id < $high AND g.observed_at < $cutoff
      AND NOT EXISTS (SELECT 1 FROM {predictions} AS p
                      WHERE p.id = g.id AND p.id >= $low AND p.id < $high AND p.scored_at >= $cutoff)
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: delete_ground_truth
WITH changed AS (
    DELETE FROM {ground_truth} AS g
    WHERE g.id >= $low AND g.id < $high AND g.observed_at < $cutoff
      AND NOT EXISTS (SELECT 1 FROM {predictions} AS p
                      WHERE p.id = g.id AND p.id >= $low AND p.id < $high AND p.scored_at >= $cutoff)
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: archive_requests
WITH changed AS (
    INSERT INTO {archive} SELECT * FROM {table} AS r
    WHERE r.id >= $low AND r.id < $high AND r.created_at < $cutoff
      AND NOT EXISTS (SELECT 1 FROM {predictions} AS p WHERE p.id = r.id AND p.id >= $low AND p.id < $high)
      AND NOT EXISTS (SELECT 1 FROM {ground_truth} AS g WHERE g.id = r.id AND g.id >= $low AND g.id < $high)
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: delete_requests
WITH changed AS (
    DELETE FROM {table} AS r
    WHERE r.id >= $low AND r.id < $high AND r.created_at < $cutoff
      AND NOT EXISTS (SELECT 1 FROM {predictions} AS p WHERE p.id = r.id AND p.id >= $low AND p.id < $high)
      AND NOT EXISTS (SELECT 1 FROM {ground_truth} AS g WHERE g.id = r.id AND g.id >= $low AND g.id < $high)
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: archive_job_runs
WITH changed AS (
    INSERT INTO indb.job_runs_archive SELECT * FROM indb.job_runs AS r
    WHERE r.id >= $low AND r.id < $high AND r.finished_at < $cutoff AND r.status <> 'running' AND r.id <> $run_id
      AND r.id <> (SELECT max(l.id) FROM indb.job_runs AS l WHERE l.job = r.job)
      AND r.id IS DISTINCT FROM (SELECT max(s.id) FROM indb.job_runs AS s WHERE s.job = r.job AND s.status = 'succeeded')
    RETURNING 1
)
SELECT count(*) FROM changed;

-- name: delete_job_runs
WITH changed AS (
    DELETE FROM indb.job_runs AS r
    WHERE r.id >= $low AND r.id < $high AND r.finished_at < $cutoff AND r.status <> 'running' AND r.id <> $run_id
      AND r.id <> (SELECT max(l.id) FROM indb.job_runs AS l WHERE l.job = r.job)
      AND r.id IS DISTINCT FROM (SELECT max(s.id) FROM indb.job_runs AS s WHERE s.job = r.job AND s.status = 'succeeded')
    RETURNING 1
)
SELECT count(*) FROM changed;

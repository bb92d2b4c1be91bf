-- Statements of the job actions (engine/jobs/actions/). {slots} take only identifiers quoted by
-- indb.identifiers; values are bound. Every statement that changes rows returns one row: the
-- number of rows it changed (DuckDB's INSERT/DELETE do; sql/postgres/jobs_actions.sql counts).

-- name: local_time
-- A naive UTC time ($now: the run's) as the session's local time: deployment tables keep
-- local times (their defaults are current_timestamp), and so do monitors' windows.
SELECT CAST(CAST($now AS TIMESTAMP) AT TIME ZONE 'UTC' AS TIMESTAMP);

-- name: deployment_monitors
-- retain: what each monitor on a deployment still reads (it re-runs from last_window).
SELECT name, last_window, time_column, window_seconds FROM indb.monitors
WHERE deployment = $deployment AND schema_name = $schema ORDER BY name;

-- name: time_column_floor
-- retain, for a monitor windowed by a request column ({window_time}): the earliest
-- predictions and request times of the rows in its windows from last_window on.
SELECT min(p.scored_at), min({request_time}) FROM {table} AS r JOIN {predictions} AS p ON p.id = r.id
WHERE {window_time} >= $since;

-- name: id_range
-- retain: the request ids ({time} < $cutoff) a sweep has to look at, batch by batch.
SELECT min(id), max(id) FROM {table} WHERE {time} < $cutoff;

-- name: create_archive
CREATE TABLE IF NOT EXISTS {archive} AS SELECT * FROM {table} LIMIT 0;

-- name: archive_predictions
INSERT INTO {archive} SELECT * FROM {predictions} AS p
WHERE p.id >= $low AND p.id < $high AND p.scored_at < $cutoff;

-- name: delete_predictions
DELETE FROM {predictions} AS p WHERE p.id >= $low AND p.id < $high AND p.scored_at < $cutoff;

-- name: archive_ground_truth
-- Labels older than the cutoff, unless their row's prediction is kept (scored at or after it):
-- a monitor's accuracy for a kept window reads them.
INSERT INTO {archive} SELECT * FROM {ground_truth} AS g
WHERE g.id >= $low AND g.id < $high AND g.observed_at < $cutoff
  AND NOT EXISTS (SELECT 1 FROM {predictions} AS p
                  WHERE p.id = g.id AND p.id >= $low AND p.id < $high AND p.scored_at >= $cutoff);

-- name: delete_ground_truth
DELETE FROM {ground_truth} AS g
WHERE g.id >= $low AND g.id < $high AND g.observed_at < $cutoff
  AND NOT EXISTS (SELECT 1 FROM {predictions} AS p
                  WHERE p.id = g.id AND p.id >= $low AND p.id < $high AND p.scored_at >= $cutoff);

-- name: archive_requests
-- Requests older than the cutoff with no prediction and no label left (children go first).
INSERT INTO {archive} SELECT * FROM {table} AS r
WHERE r.id >= $low AND r.id < $high AND r.created_at < $cutoff
  AND NOT EXISTS (SELECT 1 FROM {predictions} AS p WHERE p.id = r.id AND p.id >= $low AND p.id < $high)
  AND NOT EXISTS (SELECT 1 FROM {ground_truth} AS g WHERE g.id = r.id AND g.id >= $low AND g.id < $high);

-- name: delete_requests
DELETE FROM {table} AS r
WHERE r.id >= $low AND r.id < $high AND r.created_at < $cutoff
  AND NOT EXISTS (SELECT 1 FROM {predictions} AS p WHERE p.id = r.id AND p.id >= $low AND p.id < $high)
  AND NOT EXISTS (SELECT 1 FROM {ground_truth} AS g WHERE g.id = r.id AND g.id >= $low AND g.id < $high);

-- name: job_runs_range
-- retain job_runs: finished runs older than the cutoff, except each job's last run and last
-- success (indb.job_status reads them) and the run doing the sweep.
SELECT min(id), max(id) FROM indb.job_runs WHERE finished_at < $cutoff;

-- name: create_job_runs_archive
CREATE TABLE IF NOT EXISTS indb.job_runs_archive AS SELECT * FROM indb.job_runs LIMIT 0;

-- name: archive_job_runs
INSERT INTO indb.job_runs_archive SELECT * FROM indb.job_runs AS r
WHERE r.id >= $low AND r.id < $high AND r.finished_at < $cutoff AND r.status <> 'running' AND r.id <> $run_id
  AND r.id <> (SELECT max(l.id) FROM indb.job_runs AS l WHERE l.job = r.job)
  AND r.id IS DISTINCT FROM (SELECT max(s.id) FROM indb.job_runs AS s WHERE s.job = r.job AND s.status = 'succeeded');

-- name: delete_job_runs
DELETE FROM indb.job_runs AS r
WHERE r.id >= $low AND r.id < $high AND r.finished_at < $cutoff AND r.status <> 'running' AND r.id <> $run_id
  AND r.id <> (SELECT max(l.id) FROM indb.job_runs AS l WHERE l.job = r.job)
  AND r.id IS DISTINCT FROM (SELECT max(s.id) FROM indb.job_runs AS s WHERE s.job = r.job AND s.status = 'succeeded');

-- Jobs: the catalog reads and writes of indb.jobs and indb.job_runs (migration 012). Where the
-- database has procedures (PostgreSQL), creating, changing and running a job are the server's
-- own functions (indb.schedule, indb.unschedule, indb.enable_job, indb.run_job) called below;
-- elsewhere (DuckDB) indb's runner writes the rows itself.

-- name: get_job
SELECT name, schedule, timezone, action, arguments, enabled, on_alert, retries, retry_delay_seconds,
       timeout_seconds, alert_after_failures, catch_up, next_run, last_alert_id, owner, comment,
       created_at, updated_at
FROM indb.jobs WHERE name = $name;

-- name: job_names
SELECT name FROM indb.jobs ORDER BY name;

-- name: list_jobs
SELECT name, action, schedule, timezone, enabled, next_run, last_status, last_started_at,
       last_success_at, consecutive_failures, runs, owner
FROM indb.job_status ORDER BY name;

-- name: insert_job
INSERT INTO indb.jobs (name, schedule, timezone, action, arguments, enabled, on_alert, retries,
                       retry_delay_seconds, timeout_seconds, alert_after_failures, catch_up,
                       next_run, last_alert_id, owner, comment, created_at, updated_at)
VALUES ($name, $schedule, $timezone, $action, CAST($arguments AS JSON), $enabled,
        CAST($on_alert AS JSON), $retries, $retry_delay, $timeout, $alert_after_failures,
        $catch_up, $next_run,
        coalesce((SELECT max(id) FROM indb.alerts), 0),  -- only alerts raised from now on
        $owner, $comment, $now, $now);

-- name: delete_job
DELETE FROM indb.jobs WHERE name = $name;

-- name: set_enabled
UPDATE indb.jobs SET enabled = $enabled, next_run = $next_run, updated_at = $now WHERE name = $name;

-- name: set_next_run
UPDATE indb.jobs SET next_run = $next_run WHERE name = $name;

-- name: due_jobs
-- Enabled jobs with a schedule whose next run has come, the longest-waiting first.
SELECT name FROM indb.jobs
WHERE enabled AND schedule IS NOT NULL AND next_run IS NOT NULL AND next_run <= $now
ORDER BY next_run, name;

-- name: next_due
SELECT min(next_run) FROM indb.jobs WHERE enabled AND schedule IS NOT NULL;

-- name: alert_jobs
-- Enabled jobs waiting for an alert, with the newest matching alert they have not run for.
SELECT j.name, max(a.id) AS alert_id
FROM indb.jobs AS j
JOIN indb.alerts AS a
  ON a.monitor = json_extract_string(j.on_alert, '$.monitor')
 AND coalesce(a.kind, 'monitor') = 'monitor'
 AND (json_extract_string(j.on_alert, '$.metric') IS NULL
      OR a.metric = json_extract_string(j.on_alert, '$.metric'))
 AND a.id > j.last_alert_id
WHERE j.enabled AND j.on_alert IS NOT NULL
GROUP BY j.name
ORDER BY j.name;

-- name: set_last_alert
UPDATE indb.jobs SET last_alert_id = $alert_id WHERE name = $name AND last_alert_id < $alert_id;

-- name: start_run
INSERT INTO indb.job_runs (job, scheduled_for, started_at, status, attempt, reason, runner, host, pid)
VALUES ($job, $scheduled_for, $now, $status, $attempt, $reason, $runner, $host, $pid)
RETURNING id;

-- name: skipped_run
INSERT INTO indb.job_runs (job, scheduled_for, started_at, finished_at, status, attempt, reason,
                           error, runner, host, pid)
VALUES ($job, $scheduled_for, $now, $now, 'skipped', 1, $reason, $error, $runner, $host, $pid)
RETURNING id;

-- name: finish_run
UPDATE indb.job_runs
SET status = $status, finished_at = $now, rows_affected = $rows, result = CAST($result AS JSON),
    error = $error
WHERE id = $id;

-- name: orphan_runs
-- Runs left 'running' by another process (killed, or the machine stopped): a DuckDB file has
-- one writing process, so while this one holds it no other process can still be running them.
UPDATE indb.job_runs
SET status = 'failed', finished_at = $now,
    error = 'the process running it (pid ' || coalesce(CAST(pid AS VARCHAR), '?') || ' on '
            || coalesce(host, '?') || ') ended before the run finished'
WHERE status = 'running' AND (pid IS DISTINCT FROM $pid OR host IS DISTINCT FROM $host)
RETURNING id;

-- name: get_run
SELECT id, job, scheduled_for, started_at, finished_at, status, attempt, reason, rows_affected,
       result, error, runner, host, pid
FROM indb.job_runs WHERE id = $id;

-- name: job_runs
SELECT id, job, scheduled_for, started_at, finished_at, status, attempt, reason, rows_affected,
       result, error, runner, host, pid
FROM indb.job_runs
WHERE CAST($job AS VARCHAR) IS NULL OR job = $job
ORDER BY id DESC
LIMIT CAST($limit AS INTEGER);

-- name: consecutive_failures
SELECT consecutive_failures FROM indb.job_status WHERE name = $name;

-- name: open_job_alert
SELECT id FROM indb.alerts
WHERE kind = 'job' AND monitor = $job AND status IN ('open', 'acknowledged')
ORDER BY id DESC LIMIT 1;

-- name: insert_job_alert
-- A job that keeps failing: monitor = the job, feature 'job', metric 'consecutive_failures'.
INSERT INTO indb.alerts (monitor, run_id, window_start, window_end, feature, metric, value,
                         threshold, status, opened_at, first_seen, last_seen, seen_count,
                         last_window_start, kind)
SELECT $job, r.id, r.started_at, $now, 'job', 'consecutive_failures', $failures, $threshold,
       'open', $now, $now, $now, 1, r.started_at, 'job'
FROM indb.job_runs AS r WHERE r.id = $run_id
RETURNING id;

-- name: update_job_alert
UPDATE indb.alerts
SET value = $failures, run_id = $run_id, window_end = $now, last_seen = $now,
    seen_count = seen_count + 1,
    last_window_start = (SELECT started_at FROM indb.job_runs WHERE id = $run_id)
WHERE id = $id;

-- The server's functions, where the database has procedures (see sql/postgres/jobs.sql).

-- name: server_schedule
SELECT indb.schedule($name, $schedule, $action, $arguments, $options);

-- name: server_unschedule
SELECT indb.unschedule($name);

-- name: server_enable_job
SELECT indb.enable_job($name, $enabled);

-- name: server_run_job
CALL indb.run_job($name, 'manual', NULL);

-- Jobs: scheduled, recorded work (a monitor run, an ingest, a retention sweep, ...). The same
-- tables serve pg_cron on PostgreSQL and indb's own scheduler on DuckDB. Every time in these
-- tables is UTC without a zone (schedules are evaluated in the job's time zone, UTC unless set).

CREATE TABLE IF NOT EXISTS indb.jobs (
    name            VARCHAR PRIMARY KEY,
    schedule        VARCHAR,
    timezone        VARCHAR NOT NULL DEFAULT 'UTC',
    action          VARCHAR NOT NULL,
    arguments       JSON NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT true,
    on_alert        JSON,
    retries         INTEGER NOT NULL DEFAULT 0,
    retry_delay_seconds DOUBLE NOT NULL DEFAULT 60,
    timeout_seconds DOUBLE,
    alert_after_failures INTEGER NOT NULL DEFAULT 3,
    catch_up        VARCHAR NOT NULL DEFAULT 'latest',
    next_run        TIMESTAMP,
    last_alert_id   BIGINT NOT NULL DEFAULT 0,
    cron_job_id     BIGINT,
    owner           VARCHAR NOT NULL,
    comment         VARCHAR,
    created_at      TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    updated_at      TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    CHECK (catch_up IN ('latest', 'all', 'none')),
    CHECK (retries >= 0 AND retry_delay_seconds >= 0 AND alert_after_failures >= 1),
    CHECK (schedule IS NOT NULL OR on_alert IS NOT NULL)
);
COMMENT ON TABLE indb.jobs IS 'Scheduled work: a cron expression or interval (schedule, in timezone) and/or an alert (on_alert) runs action with arguments; next_run is the next due time (UTC); cron_job_id is pg_cron''s job on PostgreSQL.';

CREATE SEQUENCE IF NOT EXISTS indb.job_run_id;
CREATE TABLE IF NOT EXISTS indb.job_runs (
    id            BIGINT NOT NULL DEFAULT nextval('indb.job_run_id'),
    job           VARCHAR NOT NULL,
    scheduled_for TIMESTAMP,
    started_at    TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    finished_at   TIMESTAMP,
    status        VARCHAR NOT NULL,
    attempt       INTEGER NOT NULL DEFAULT 1,
    reason        VARCHAR NOT NULL DEFAULT 'schedule',
    rows_affected BIGINT,
    result        JSON,
    error         VARCHAR,
    runner        VARCHAR NOT NULL,
    host          VARCHAR,
    pid           BIGINT,
    PRIMARY KEY (id),
    CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'timed_out')),
    CHECK (runner IN ('pg_cron', 'scheduler', 'manual')),
    CHECK (reason IN ('schedule', 'catch_up', 'alert', 'retry', 'manual'))
);
COMMENT ON TABLE indb.job_runs IS 'One row per run of a job: when it was due and ran, its status (running, succeeded, failed, skipped, timed_out), attempt, result JSON or error, and who ran it (pg_cron, scheduler, manual) on which host and pid.';

CREATE INDEX IF NOT EXISTS job_runs_job ON indb.job_runs (job, id);

CREATE OR REPLACE VIEW indb.job_status AS
SELECT j.name, j.action, j.schedule, j.timezone, j.enabled, j.next_run, j.owner,
       last_run.id AS last_run_id, last_run.status AS last_status,
       last_run.started_at AS last_started_at, last_run.finished_at AS last_finished_at,
       last_run.error AS last_error,
       (SELECT max(r.finished_at) FROM indb.job_runs r
        WHERE r.job = j.name AND r.status = 'succeeded') AS last_success_at,
       (SELECT count(*) FROM indb.job_runs r
        WHERE r.job = j.name AND r.status IN ('failed', 'timed_out')
          AND r.id > coalesce((SELECT max(s.id) FROM indb.job_runs s
                               WHERE s.job = j.name AND s.status = 'succeeded'), 0)) AS consecutive_failures,
       (SELECT count(*) FROM indb.job_runs r WHERE r.job = j.name) AS runs
FROM indb.jobs j
LEFT JOIN indb.job_runs last_run
       ON last_run.id = (SELECT max(r.id) FROM indb.job_runs r WHERE r.job = j.name);
COMMENT ON VIEW indb.job_status IS 'Each job with its last run (status, times, error), last success, failed runs since that success and the next due time.';

-- A job that keeps failing raises an alert like a monitor does: kind 'job', monitor = the job's
-- name, feature 'job', metric 'consecutive_failures', value = failures in a row, threshold = the
-- job's alert_after_failures, run_id = the job run; while open, later failures update it.
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS kind VARCHAR DEFAULT 'monitor';

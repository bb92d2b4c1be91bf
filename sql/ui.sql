-- indb ui: what each page reads. Catalog tables and views, and aggregates of a deployment's
-- tables over a bounded time range: never a whole prediction table, every list with a LIMIT.
-- Each statement is also shown on its page ("show SQL") with its values as literals.

-- name: overview_counts
SELECT (SELECT count(*) FROM indb.models) AS models,
       (SELECT count(*) FROM indb.deployments) AS deployments,
       (SELECT count(*) FROM indb.alerts WHERE status <> 'resolved') AS open_alerts,
       (SELECT count(*) FROM indb.job_status WHERE last_status IN ('failed', 'timed_out')) AS failing_jobs;

-- name: overview_models
SELECT name, versions, latest_version, production_version, task, description
FROM indb.model_summary ORDER BY name LIMIT $limit;

-- name: overview_deployments
SELECT table_name, model, version, runtime, updated_at
FROM indb.deployments ORDER BY table_name LIMIT $limit;

-- name: overview_alerts
SELECT id, kind, monitor, feature, metric, model_version, value, threshold, status, first_seen,
       last_seen, seen_count
FROM indb.alerts WHERE status <> 'resolved' ORDER BY last_seen DESC, id DESC LIMIT $limit;

-- name: overview_failing_jobs
SELECT name, action, last_status, last_started_at, last_error, consecutive_failures, next_run
FROM indb.job_status WHERE last_status IN ('failed', 'timed_out') ORDER BY name LIMIT $limit;

-- name: model_versions
SELECT version, stage, task, sha256, size_bytes, signature, CAST(metrics AS VARCHAR) AS metrics,
       created_by, created_at
FROM indb.model_versions WHERE model = $model ORDER BY version DESC LIMIT $limit;

-- name: model_aliases
SELECT alias, version, updated_at FROM indb.model_aliases WHERE model = $model ORDER BY alias;

-- name: model_deployments
SELECT table_name, version, runtime, updated_at FROM indb.deployments WHERE model = $model
ORDER BY table_name;

-- name: model_leaderboard
SELECT version, metric, value, rank, better, stage, deployed, run_id
FROM indb.leaderboard WHERE model = $model ORDER BY metric, rank, version LIMIT $limit;

-- name: model_lineage
-- Edges reachable from the model's versions (training runs, training sets, feature sets,
-- sources) and the deployments that serve or served it.
WITH RECURSIVE reach (kind, name, version, depth) AS (
    SELECT 'model', CAST($model AS VARCHAR), CAST(NULL AS BIGINT), 0
    UNION
    SELECT l.to_kind, l.to_name, l.to_version, r.depth + 1
    FROM indb.lineage AS l JOIN reach AS r
      ON l.from_kind = r.kind AND l.from_name = r.name
     AND (r.version IS NULL OR l.from_version = r.version)
    WHERE r.depth < 4 AND l.to_kind <> 'model'
)
SELECT DISTINCT l.from_kind, l.from_name, l.from_version, l.relation, l.to_kind, l.to_name,
       l.to_version, l.detail
FROM indb.lineage AS l
WHERE (l.to_kind = 'model' AND l.to_name = $model)
   OR EXISTS (SELECT 1 FROM reach AS r WHERE l.from_kind = r.kind AND l.from_name = r.name
                                        AND (r.version IS NULL OR l.from_version = r.version))
ORDER BY l.from_kind, l.from_name, l.from_version, l.relation, l.to_kind, l.to_name, l.to_version
LIMIT $limit;

-- name: model_audit
SELECT id, logged_at, actor, action, object, CAST(details AS VARCHAR) AS details
FROM indb.audit_log
WHERE object = $model OR object LIKE $versions
   OR object IN (SELECT table_name FROM indb.deployments WHERE model = $model)
ORDER BY id DESC LIMIT $limit;

-- name: model_stage_requests
SELECT id, version, to_stage, reason, requested_by, status, created_at, decided_at
FROM indb.stage_requests WHERE model = $model ORDER BY id DESC LIMIT $limit;

-- name: deployment
SELECT d.table_name, d.model, d.version, d.runtime, d.created_at, d.updated_at, v.task
FROM indb.deployments AS d
LEFT JOIN indb.model_versions AS v ON v.model = d.model AND v.version = d.version
WHERE d.table_name = $deployment;

-- name: deployment_challengers
SELECT version, mode, weight, runtime, bucket_low, bucket_high, added_at, added_by
FROM indb.challengers WHERE deployment = $deployment ORDER BY version;

-- name: deployment_latest
SELECT max(scored_at) AS latest FROM {predictions};

-- name: deployment_requests_per_hour
SELECT date_trunc('hour', scored_at) AS hour, count(*) AS predictions
FROM {predictions} WHERE scored_at >= $since AND served
GROUP BY 1 ORDER BY 1;

-- name: deployment_class_share
SELECT date_trunc('day', scored_at) AS day, prediction, count(*) AS predictions
FROM {predictions} WHERE scored_at >= $since AND served
GROUP BY 1, 2 ORDER BY 1, 2;

-- name: deployment_value_summary
SELECT date_trunc('day', scored_at) AS day, avg(CAST(prediction AS DOUBLE)) AS mean,
       min(CAST(prediction AS DOUBLE)) AS low, max(CAST(prediction AS DOUBLE)) AS high,
       count(*) AS predictions
FROM {predictions} WHERE scored_at >= $since AND served
GROUP BY 1 ORDER BY 1;

-- name: deployment_comparison
SELECT window_name, version, role, mode, metric, labeled_rows, value, champion_value, difference,
       ci_low, ci_high, p_value, verdict, evaluated_at
FROM indb.challenger_comparison WHERE deployment = $deployment
ORDER BY window_name, metric, role, version LIMIT $limit;

-- name: deployment_humility
SELECT rule, feature, action, count(*) AS events, max(logged_at) AS last_event
FROM indb.humility_events WHERE deployment = $deployment
GROUP BY rule, feature, action ORDER BY rule, feature, action LIMIT $limit;

-- name: deployment_quality
-- The quality metric per model version and window from the latest run that computed it.
SELECT r.window_start, r.model_version, r.metric, r.value, r.n_current
FROM indb.monitor_results AS r JOIN indb.monitors AS m ON m.name = r.monitor
WHERE m.deployment = $deployment AND r.metric = $metric AND r.model_version IS NOT NULL
  AND r.run_id = (SELECT max(x.run_id) FROM indb.monitor_results AS x
                  WHERE x.monitor = r.monitor AND x.window_start = r.window_start
                    AND x.metric = r.metric AND x.model_version = r.model_version)
ORDER BY r.window_start, r.model_version LIMIT $limit;

-- name: deployment_monitors
SELECT name, window_size, mode, last_run_at FROM indb.monitors WHERE deployment = $deployment
ORDER BY name;

-- name: monitors
SELECT name, deployment, window_size, mode, last_run_at, last_window FROM indb.monitors
ORDER BY name LIMIT $limit;

-- name: monitor
SELECT name, deployment, schema_name, window_size, window_seconds, mode, task, n_reference,
       time_column, CAST(reference AS VARCHAR) AS reference, created_by, created_at, last_run_at,
       last_window
FROM indb.monitors WHERE name = $monitor;

-- name: monitor_features
SELECT feature, kind, n, missing, mean, std, min_value, max_value
FROM indb.monitor_features WHERE monitor = $monitor ORDER BY feature;

-- name: monitor_metrics
SELECT DISTINCT metric FROM indb.monitor_results
WHERE monitor = $monitor AND model_version IS NULL AND category IS NULL ORDER BY metric;

-- name: monitor_drift
-- One metric per column and window, from the latest run that computed that window.
SELECT r.feature, r.window_start, r.value, r.threshold, r.drifted, r.n_current
FROM indb.monitor_results AS r
WHERE r.monitor = $monitor AND r.metric = $metric AND r.model_version IS NULL
  AND r.category IS NULL
  AND r.run_id = (SELECT max(x.run_id) FROM indb.monitor_results AS x
                  WHERE x.monitor = r.monitor AND x.window_start = r.window_start
                    AND x.feature = r.feature AND x.metric = r.metric AND x.model_version IS NULL)
ORDER BY r.feature, r.window_start LIMIT $limit;

-- name: monitor_window_ids
-- The request ids of one window ({rows}: the prediction table for scored_at, else the request
-- table that holds the monitor's time column): the histograms below also filter on them, so
-- the database reads only the window's part of each table (ids grow with time).
SELECT min(id) AS low, max(id) AS high FROM {rows} WHERE {time} >= $start AND {time} < $end;

-- name: monitor_histogram
-- The reference's quantile bins against the rows of one window ({view}: the deployment's
-- scored view, {time}: the monitor's window time; low and high: its ids).
WITH edges AS (
    SELECT bin, lower, lead(lower) OVER (ORDER BY bin) AS upper, n
    FROM indb.monitor_bins WHERE monitor = $monitor AND feature = $feature AND grid = 'psi'
), window_rows AS (
    SELECT CAST({column} AS DOUBLE) AS v FROM {view}
    WHERE {time} >= $start AND {time} < $end AND {column} IS NOT NULL
      AND id BETWEEN $low AND $high
)
SELECT e.bin, e.lower, e.upper, e.n AS reference, count(w.v) AS current
FROM edges AS e LEFT JOIN window_rows AS w ON w.v >= e.lower AND (e.upper IS NULL OR w.v < e.upper)
GROUP BY e.bin, e.lower, e.upper, e.n ORDER BY e.bin;

-- name: monitor_categories
WITH reference AS (
    SELECT category, n FROM indb.monitor_bins
    WHERE monitor = $monitor AND feature = $feature AND grid = 'category'
), current AS (
    SELECT CAST({column} AS VARCHAR) AS category, count(*) AS n FROM {view}
    WHERE {time} >= $start AND {time} < $end AND {column} IS NOT NULL
      AND id BETWEEN $low AND $high
    GROUP BY 1
)
SELECT coalesce(r.category, c.category) AS category, coalesce(r.n, 0) AS reference,
       coalesce(c.n, 0) AS current
FROM reference AS r FULL OUTER JOIN current AS c ON c.category = r.category
ORDER BY 2 DESC, 3 DESC, 1 LIMIT 12;

-- name: monitor_alerts
SELECT id, kind, feature, metric, model_version, value, threshold, status, first_seen, last_seen,
       seen_count, acknowledged_by, resolved_by, note
FROM indb.alerts WHERE monitor = $monitor ORDER BY id DESC LIMIT $limit;

-- name: feature_sets
SELECT s.name, s.version, s.entity, s.table_name, s.event_time, s.ttl_seconds, s.source,
       s.description, s.created_at,
       (SELECT count(*) FROM indb.features AS f
         WHERE f.feature_set = s.name AND f.version = s.version) AS features
FROM indb.feature_sets AS s ORDER BY s.name, s.version DESC LIMIT $limit;

-- name: feature_set_versions
SELECT version, entity, table_name, online_table, event_time, ttl_seconds, schema_hash, source,
       created_by, created_at
FROM indb.feature_sets WHERE name = $feature_set ORDER BY version DESC;

-- name: feature_set_features
SELECT name, position, data_type, description FROM indb.features
WHERE feature_set = $feature_set AND version = $version ORDER BY position;

-- name: feature_set_freshness
SELECT max({event_time}) AS last_event, count(*) AS rows FROM {history};

-- name: feature_set_statistics
SELECT feature, data_type, kind, count, nulls, distinct_count, min, max, mean, stddev,
       CAST(histogram AS VARCHAR) AS histogram, CAST(top_values AS VARCHAR) AS top_values,
       computed_at
FROM indb.feature_statistics
WHERE scope = 'feature_set' AND name = $feature_set AND version = $version ORDER BY feature;

-- name: jobs
SELECT name, action, schedule, timezone, enabled, next_run, owner, last_status, last_started_at,
       last_finished_at, last_error, last_success_at, consecutive_failures, runs
FROM indb.job_status ORDER BY name LIMIT $limit;

-- name: job_runs
SELECT id, job, scheduled_for, started_at, finished_at, status, attempt, reason, runner,
       rows_affected, error
FROM indb.job_runs ORDER BY id DESC LIMIT $limit;

-- name: job_runs_of
SELECT id, job, scheduled_for, started_at, finished_at, status, attempt, reason, runner,
       rows_affected, error
FROM indb.job_runs WHERE job = $job ORDER BY id DESC LIMIT $limit;

-- name: alert_of
SELECT id, monitor, status FROM indb.alerts WHERE id = $id;

-- name: search_deployments
-- Deployments by table or model (the other objects: collaboration.sql's search over
-- indb.catalog_objects); strpos: % and _ are plain characters.
SELECT 'deployment' AS object_kind, table_name AS object_name,
       'serves ' || model || ' v' || CAST(version AS VARCHAR) AS description
FROM indb.deployments
WHERE strpos(lower(table_name), lower($text)) > 0 OR strpos(lower(model), lower($text)) > 0
ORDER BY table_name LIMIT $limit;

-- The model lifecycle's catalog reads and writes: training runs and their metrics, retraining
-- policies, the leaderboard (migration 014).

-- name: next_run_id
SELECT nextval('indb.training_run_id');

-- name: insert_run
INSERT INTO indb.training_runs (id, model, parent_version, status, recipe, training_set,
                                triggered_by, job_run_id, started_at)
VALUES ($id, $model, $parent_version, 'running', CAST($recipe AS JSON), $training_set,
        $triggered_by, $job_run_id, $started_at);

-- name: update_run
UPDATE indb.training_runs
SET status = $status, version = $version, parent_version = $parent_version,
    recipe = CAST($recipe AS JSON), training_set = $training_set,
    training_set_version = $training_set_version, cutoff = $cutoff, rows = $rows,
    content_hash = $content_hash, holdout = CAST($holdout AS JSON), metrics = CAST($metrics AS JSON),
    champion_metrics = CAST($champion_metrics AS JSON), fit_seconds = $fit_seconds,
    notes = CAST($notes AS JSON), finished_at = $finished_at, error = $error
WHERE id = $id;

-- name: insert_metric
INSERT INTO indb.training_run_metrics (run_id, model, version, role, metric, value)
VALUES ($run_id, $model, $version, $role, $metric, $value);

-- name: get_run
SELECT id, model, version, parent_version, status, recipe, training_set, training_set_version,
       cutoff, rows, content_hash, holdout, metrics, champion_metrics, fit_seconds, triggered_by,
       job_run_id, notes, started_at, finished_at, error
FROM indb.training_runs WHERE id = $id;

-- name: list_runs
SELECT id, model, version, parent_version, status, training_set, training_set_version, cutoff,
       rows, metrics, champion_metrics, fit_seconds, triggered_by, job_run_id, notes, started_at,
       finished_at, error
FROM indb.training_runs
WHERE CAST($model AS VARCHAR) IS NULL OR model = $model
ORDER BY id DESC
LIMIT $limit;

-- name: last_success
-- The training set version the last succeeded run of a model trained on.
SELECT training_set, training_set_version, cutoff FROM indb.training_runs
WHERE model = $model AND status = 'succeeded'
ORDER BY id DESC LIMIT 1;

-- name: get_policy
SELECT model, training_set, holdout, metric, min_new_labels, promote, min_improvement, min_labels,
       confidence, deployment, job, created_by, created_at
FROM indb.retraining_policies WHERE model = $model;

-- name: policy_names
SELECT model FROM indb.retraining_policies ORDER BY model;

-- name: insert_policy
INSERT INTO indb.retraining_policies (model, training_set, holdout, metric, min_new_labels, promote,
                                      min_improvement, min_labels, confidence, deployment, job,
                                      created_by, created_at)
VALUES ($model, $training_set, $holdout, $metric, $min_new_labels, $promote, $min_improvement,
        $min_labels, $confidence, $deployment, $job, $created_by, $created_at);

-- name: delete_policy
DELETE FROM indb.retraining_policies WHERE model = $model;

-- name: leaderboard
SELECT model, version, metric, value, rank, better, role, stage, deployed, run_id, training_set,
       training_set_version
FROM indb.leaderboard
WHERE model = $model AND (CAST($metric AS VARCHAR) IS NULL OR metric = $metric)
ORDER BY metric, rank, version;

-- name: deployment_version
SELECT model, version FROM indb.deployments WHERE table_name = $table_name;

-- name: job_trigger
-- Why a job run ran (reason) and, for an alert, the alert it ran for (the job's last_alert_id).
SELECT r.reason, j.last_alert_id FROM indb.job_runs AS r JOIN indb.jobs AS j ON j.name = r.job
WHERE r.id = $run_id;

-- Comparing a deployment's challengers with its champion (indb.lifecycle.comparison).
-- {slots} take only identifiers quoted by indb.identifiers.

-- name: has_catalog_table
-- Tables other branches' migrations add (indb.challengers: 015, indb.retraining_policies: 014).
SELECT count(*) FROM information_schema.tables WHERE table_schema = 'indb' AND table_name = $name;

-- name: deployment_row
SELECT model, version, runtime, mode, features FROM indb.deployments WHERE table_name = $table_name;

-- name: labeled_predictions
-- Predictions of the deployment's model with the latest label recorded for their request id:
-- champion rows (role 'champion') and challenger rows (role 'challenger'; served: split arms).
SELECT p.id, p.role, p.served, p.model_version, p.prediction, {probability_columns}p.scored_at, g.label
FROM {predictions} AS p
JOIN (SELECT id, arg_max(label, observed_at) AS label FROM {ground_truth} GROUP BY id) AS g
  ON g.id = p.id
WHERE p.model = $model;

-- name: labeled_champion_predictions
-- The same for a predictions table without challenger columns: every row is the champion's.
SELECT p.id, 'champion' AS role, true AS served, p.model_version, p.prediction,
       {probability_columns}p.scored_at, g.label
FROM {predictions} AS p
JOIN (SELECT id, arg_max(label, observed_at) AS label FROM {ground_truth} GROUP BY id) AS g
  ON g.id = p.id
WHERE p.model = $model;

-- name: current_challengers
SELECT version, mode FROM indb.challengers WHERE deployment = $deployment ORDER BY version;

-- name: retraining_policy
SELECT * FROM indb.retraining_policies WHERE model = $model;

-- name: next_evaluation_id
SELECT nextval('indb.challenger_evaluation_id');

-- name: insert_comparison
INSERT INTO indb.challenger_comparisons (
    evaluation_id, deployment, model, champion_version, window_name, window_start, version, role,
    mode, metric, labeled_rows, value, champion_value, difference, ci_low, ci_high, p_value,
    confidence, method, verdict)
VALUES ($evaluation_id, $deployment, $model, $champion_version, $window_name, $window_start, $version,
        $role, $mode, $metric, $labeled_rows, $value, $champion_value, $difference, $ci_low, $ci_high,
        $p_value, $confidence, $method, $verdict);

-- name: latest_comparison
-- The latest stored evaluation of one deployment (what indb.challenger_comparison shows).
SELECT * FROM indb.challenger_comparison WHERE deployment = $deployment
ORDER BY window_name, role DESC, version, mode, metric;

-- name: evidence_rows
-- The newest stored comparison rows of one challenger version over all its labeled rows.
SELECT * FROM indb.challenger_comparisons
WHERE deployment = $deployment AND version = $version AND role = 'challenger' AND window_name = 'all'
  AND evaluation_id = (SELECT max(evaluation_id) FROM indb.challenger_comparisons
                       WHERE deployment = $deployment AND version = $version AND role = 'challenger')
ORDER BY metric;

-- PostgreSQL versions of comparison statements (no arg_max: the latest label by DISTINCT ON).

-- name: labeled_predictions
SELECT p.id, p.role, p.served, p.model_version, p.prediction, {probability_columns}p.scored_at, g.label
FROM {predictions} AS p
JOIN (SELECT DISTINCT ON (id) id, label FROM {ground_truth} ORDER BY id, observed_at DESC) AS g
  ON g.id = p.id
WHERE p.model = $model;

-- name: labeled_champion_predictions
SELECT p.id, 'champion' AS role, true AS served, p.model_version, p.prediction,
       {probability_columns}p.scored_at, g.label
FROM {predictions} AS p
JOIN (SELECT DISTINCT ON (id) id, label FROM {ground_truth} ORDER BY id, observed_at DESC) AS g
  ON g.id = p.id
WHERE p.model = $model;

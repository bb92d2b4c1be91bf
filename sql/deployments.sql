-- Deployments: which model version scores which request table, and how.

-- name: get_deployment
SELECT table_name, model, version, runtime, mode, created_at, updated_at
FROM indb.deployments WHERE table_name = $table_name;

-- name: list_deployments
-- follows: the alias the deployment follows (set_alias moves it), or 'pinned' to its version;
-- production_version shows where production points, so a pinned deployment that disagrees shows.
-- explains: how each prediction is explained ('linear', 'tree'), or 'no'.
SELECT d.table_name, d.model, d.version, coalesce(d.alias, 'pinned') AS follows,
       (SELECT a.version FROM indb.model_aliases a
         WHERE a.model = d.model AND a.alias = 'production') AS production_version,
       d.runtime, d.mode, coalesce(d.explain_method, 'no') AS explains, d.created_at, d.updated_at
FROM indb.deployments d ORDER BY d.table_name;

-- name: insert_deployment
INSERT INTO indb.deployments (table_name, model, version, runtime, mode, probability_columns, features)
VALUES ($table_name, $model, $version, $runtime, $mode, $probability_columns, $features);

-- name: update_deployment
UPDATE indb.deployments
SET model = $model, version = $version, runtime = $runtime, mode = $mode,
    probability_columns = $probability_columns, features = $features, updated_at = current_timestamp
WHERE table_name = $table_name;

-- name: delete_deployment
DELETE FROM indb.deployments WHERE table_name = $table_name;

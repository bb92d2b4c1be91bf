-- Deployments: which model version scores which request table.

-- name: get_deployment
SELECT table_name, model, version, runtime, created_at, updated_at
FROM indb.deployments WHERE table_name = $table_name;

-- name: list_deployments
SELECT table_name, model, version, runtime, created_at, updated_at
FROM indb.deployments ORDER BY table_name;

-- name: insert_deployment
INSERT INTO indb.deployments (table_name, model, version, runtime)
VALUES ($table_name, $model, $version, $runtime);

-- name: update_deployment
UPDATE indb.deployments
SET model = $model, version = $version, runtime = $runtime, updated_at = current_timestamp
WHERE table_name = $table_name;

-- name: delete_deployment
DELETE FROM indb.deployments WHERE table_name = $table_name;

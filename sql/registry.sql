-- Model registry: models, versions and aliases.

-- name: get_model
SELECT name, description, created_by, created_at FROM indb.models WHERE name = $name;

-- name: insert_model
INSERT INTO indb.models (name, description, created_by) VALUES ($name, $description, $created_by);

-- name: next_version
SELECT coalesce(max(version), 0) + 1 AS version FROM indb.model_versions WHERE model = $model;

-- name: insert_version
INSERT INTO indb.model_versions
    (model, version, onnx, sha256, size_bytes, task, signature, inputs, outputs, classes,
     recipe, metrics, tags, conversion, description, created_by, sample, content_hash)
VALUES
    ($model, $version, $onnx, $sha256, $size_bytes, $task, $signature, $inputs, $outputs, $classes,
     $recipe, $metrics, $tags, $conversion, $description, $created_by, $sample, $content_hash);

-- name: list_models
SELECT * FROM indb.model_summary ORDER BY name;

-- name: list_model_names
SELECT name FROM indb.models ORDER BY name;

-- name: list_versions
SELECT v.model, v.version, v.sha256, v.size_bytes, v.task, v.signature, v.inputs, v.outputs,
       v.classes, v.recipe, v.metrics, v.tags, v.conversion, v.description, v.created_by,
       v.created_at,
       sha256(v.onnx) = v.sha256 AS integrity_ok,
       (SELECT list(a.alias ORDER BY a.alias) FROM indb.model_aliases a
         WHERE a.model = v.model AND a.version = v.version) AS aliases
FROM indb.model_versions v
WHERE v.model = $model
ORDER BY v.version;

-- name: all_versions
SELECT v.model, v.version, v.sha256, v.task, v.inputs, v.outputs, v.classes
FROM indb.model_versions v
ORDER BY v.model, v.version;

-- name: get_version
SELECT v.model, v.version, v.sha256, v.size_bytes, v.task, v.signature, v.inputs, v.outputs,
       v.classes, v.recipe, v.metrics, v.tags, v.conversion, v.description, v.created_by,
       v.created_at, v.onnx, v.content_hash
FROM indb.model_versions v
WHERE v.model = $model AND v.version = $version;

-- name: get_sample
SELECT sample FROM indb.model_versions WHERE model = $model AND version = $version;

-- name: default_version
-- The version predict_<model>() uses: the one aliased production, else the latest.
SELECT coalesce(
    (SELECT version FROM indb.model_aliases WHERE model = $model AND alias = 'production'),
    (SELECT max(version) FROM indb.model_versions WHERE model = $model)) AS version;

-- name: alias_version
SELECT version FROM indb.model_aliases WHERE model = $model AND alias = $alias;

-- name: delete_alias
DELETE FROM indb.model_aliases WHERE model = $model AND alias = $alias;

-- name: insert_alias
INSERT INTO indb.model_aliases (model, alias, version) VALUES ($model, $alias, $version);

-- name: update_version_tags
UPDATE indb.model_versions SET tags = $tags WHERE model = $model AND version = $version;

-- name: update_version_description
UPDATE indb.model_versions SET description = $description WHERE model = $model AND version = $version;

-- name: update_model_description
UPDATE indb.models SET description = $description WHERE name = $name;

-- name: training_set_label
SELECT label FROM indb.training_sets WHERE name = $name AND version = $version;

-- name: deployments_of_model
-- Deployments scoring with a model: which follow an alias (alias) and which are pinned (NULL).
SELECT table_name, version, runtime, mode, features, alias
FROM indb.deployments WHERE model = $model ORDER BY table_name;

-- name: set_deployment_alias
UPDATE indb.deployments SET alias = $alias WHERE table_name = $table_name;

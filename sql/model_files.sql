-- Models as files (issue 14.3): export, import and verify a model version.

-- name: version_extras
-- What the export writes beside the version itself: its stored sample and its lineage.
SELECT v.sample, t.training_set, t.training_set_version
FROM indb.model_versions v
LEFT JOIN indb.model_training_sets t ON t.model = v.model AND t.version = v.version
WHERE v.model = $model AND v.version = $version;

-- name: version_by_sha256
SELECT version FROM indb.model_versions WHERE model = $model AND sha256 = $sha256 ORDER BY version LIMIT 1;

-- name: set_imported
-- An imported version keeps the recipe, sample and conversion report it was exported with.
UPDATE indb.model_versions
SET recipe = $recipe, sample = $sample, conversion = $conversion, content_hash = $content_hash
WHERE model = $model AND version = $version;

-- name: latest_run_metrics
-- Holdout metrics of the version in the latest training run that evaluated it.
SELECT metric, value FROM indb.training_run_metrics
WHERE model = $model AND version = $version
  AND run_id = (SELECT max(run_id) FROM indb.training_run_metrics WHERE model = $model AND version = $version);

-- name: latest_drift
-- The latest run of every monitor over a deployment that scores with the version.
SELECT r.monitor, m.deployment, r.feature, r.metric, r.value, r.window_end
FROM indb.monitor_results r
JOIN indb.monitors m ON m.name = r.monitor
JOIN indb.deployments d ON d.table_name = m.deployment
WHERE d.model = $model AND d.version = $version
  AND (r.model_version IS NULL OR r.model_version = $version)
  AND r.value IS NOT NULL
  AND r.run_id = (SELECT max(x.run_id) FROM indb.monitor_results x WHERE x.monitor = r.monitor)
ORDER BY r.monitor, r.feature, r.metric;

-- name: record_import
INSERT INTO indb.model_imports (model, version, source_model, source_version, sha256, training_set,
    training_set_version, imported_by)
VALUES ($model, $version, $source_model, $source_version, $sha256, $training_set, $training_set_version, $user);

-- name: import_of_version
-- Where an imported version came from, and whether the training set it names is here.
SELECT i.source_model, i.source_version, i.training_set, i.training_set_version,
       (SELECT count(*) FROM indb.training_sets AS t
        WHERE t.name = i.training_set AND t.version = i.training_set_version) AS present
FROM indb.model_imports AS i WHERE i.model = $model AND i.version = $version;

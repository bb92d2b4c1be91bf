-- Lineage (indb.lineage) and what db.reproduce reads (issue 14.4).

-- name: edges_from
-- What a node came from or serves: version -1 stands for a node without one.
SELECT relation, to_kind, to_name, to_version, detail FROM indb.lineage
WHERE from_kind = $kind AND from_name = $name AND coalesce(from_version, -1) = $version
ORDER BY relation, to_kind, to_name, to_version;

-- name: edges_to
-- What points at a model version: deployments (serves, served) and later versions (parent).
SELECT relation, from_kind, from_name, from_version, detail FROM indb.lineage
WHERE to_kind = 'model' AND to_name = $name AND to_version = $version
ORDER BY relation, from_kind, from_name, from_version, detail;

-- name: run_of_version
-- The succeeded training run that registered a version.
SELECT id, training_set, training_set_version, cutoff, content_hash, recipe, holdout
FROM indb.training_runs
WHERE model = $model AND version = $version AND status = 'succeeded'
ORDER BY id DESC LIMIT 1;

-- name: training_set_of_version
-- A version registered with training_set=: the training set version's cutoff and hash.
SELECT m.training_set, m.training_set_version, t.cutoff, t.content_hash
FROM indb.model_training_sets AS m
JOIN indb.training_sets AS t ON t.name = m.training_set AND t.version = m.training_set_version
WHERE m.model = $model AND m.version = $version;

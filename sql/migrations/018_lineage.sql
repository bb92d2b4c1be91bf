-- Lineage you can query (issue 14): every edge indb knows of, one row each, in long form.
-- A node is (kind, name, version): model (name, version), training_run (model, run id),
-- training_set (name, version), feature_set (name, version), source (its query or table,
-- NULL version), spine (a training set's spine table or query), deployment (table, NULL).
-- Edges point from a thing to what it came from or serves:
--   model -> training_run (trained_by), training_run -> training_set (trained_on),
--   model -> training_set (trained_on, versions registered outside a training run),
--   model -> model (parent: the champion a retrain started from),
--   training_set -> feature_set (built_from), training_set -> spine (spine),
--   feature_set -> source (source), deployment -> model (serves now; served: its history).
-- Prediction rows are not edges here: each <table>_predictions row holds its model_version,
-- and deployments with features_from record the feature values they scored.

CREATE OR REPLACE VIEW indb.lineage AS
SELECT 'model' AS from_kind, r.model AS from_name, CAST(r.version AS BIGINT) AS from_version,
       'training_run' AS to_kind, r.model AS to_name, CAST(r.id AS BIGINT) AS to_version,
       'trained_by' AS relation,
       'triggered by ' || coalesce(r.triggered_by, 'unknown') AS detail
FROM indb.training_runs AS r
WHERE r.status = 'succeeded' AND r.version IS NOT NULL
UNION ALL
SELECT 'training_run', r.model, CAST(r.id AS BIGINT),
       'training_set', r.training_set, CAST(r.training_set_version AS BIGINT),
       'trained_on',
       'cutoff ' || coalesce(CAST(r.cutoff AS VARCHAR), 'none') || ', content hash '
           || coalesce(r.content_hash, 'unknown')
FROM indb.training_runs AS r
WHERE r.status = 'succeeded' AND r.version IS NOT NULL AND r.training_set_version IS NOT NULL
UNION ALL
SELECT 'model', m.model, CAST(m.version AS BIGINT),
       'training_set', m.training_set, CAST(m.training_set_version AS BIGINT),
       'trained_on', 'registered with training_set='
FROM indb.model_training_sets AS m
WHERE NOT EXISTS (SELECT 1 FROM indb.training_runs AS r
                  WHERE r.model = m.model AND r.version = m.version AND r.status = 'succeeded')
UNION ALL
SELECT 'model', r.model, CAST(r.version AS BIGINT),
       'model', r.model, CAST(r.parent_version AS BIGINT),
       'parent', 'retrained from (training run ' || CAST(r.id AS VARCHAR) || ')'
FROM indb.training_runs AS r
WHERE r.status = 'succeeded' AND r.version IS NOT NULL AND r.parent_version IS NOT NULL
UNION ALL
SELECT 'training_set', f.training_set, CAST(f.version AS BIGINT),
       'feature_set', f.feature_set, CAST(f.feature_set_version AS BIGINT),
       'built_from', CAST(f.features AS VARCHAR)
FROM indb.training_set_features AS f
UNION ALL
SELECT 'training_set', t.name, CAST(t.version AS BIGINT),
       'spine', coalesce(CAST(t.spine AS JSON) ->> 'table', CAST(t.spine AS JSON) ->> 'query'), CAST(NULL AS BIGINT),
       'spine', 'cutoff ' || coalesce(CAST(t.cutoff AS VARCHAR), 'none') || ', '
           || CAST(t.row_count AS VARCHAR) || ' rows, content hash ' || t.content_hash
FROM indb.training_sets AS t
UNION ALL
SELECT 'feature_set', s.name, CAST(s.version AS BIGINT),
       'source', s.source, CAST(NULL AS BIGINT),
       'source', 'table ' || s.table_name
FROM indb.feature_sets AS s
WHERE s.source IS NOT NULL
UNION ALL
SELECT 'deployment', d.table_name, CAST(NULL AS BIGINT),
       'model', d.model, CAST(d.version AS BIGINT),
       'serves', 'runtime ' || d.runtime
FROM indb.deployments AS d
UNION ALL
SELECT 'deployment', h.deployment, CAST(NULL AS BIGINT),
       'model', h.model, CAST(h.version AS BIGINT),
       'served', 'from ' || CAST(h.switched_at AS VARCHAR) || ': ' || h.reason
FROM indb.deployment_history AS h;
COMMENT ON VIEW indb.lineage IS 'Every lineage edge, one row each (from_kind, from_name, from_version -> to_kind, to_name, to_version, relation, detail): model version -> training run -> training set version -> feature set versions -> source; model -> parent version; training set -> spine; deployment -> version it serves (serves) and served before (served, from indb.deployment_history). Prediction rows: <table>_predictions.model_version.';

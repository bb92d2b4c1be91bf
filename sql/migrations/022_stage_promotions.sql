-- One approval flow for stages and deployments (issue 14.1 joined with 13.5): a stage request
-- may carry the deployment it is for (a retraining policy or a challenger evaluation with
-- promote = approval opens one to production). When its approvals are in and its checks pass,
-- the stage changes and the deployment switches to the version in the same transaction when
-- the deciding session may switch it (status done); else the request is left approved (the
-- stage changed, the switch pending) until db.promote / indb deployments promote, or the next
-- evaluate_challengers run by a role that may deploy, switches it.
-- indb.promotion_requests (016) stays: each row now names the stage request that decides it.

ALTER TABLE indb.stage_requests ADD COLUMN deployment VARCHAR;
ALTER TABLE indb.stage_requests ADD COLUMN evidence JSON;
ALTER TABLE indb.promotion_requests ADD COLUMN stage_request BIGINT;

COMMENT ON TABLE indb.stage_requests IS 'A request to move a model version to a stage: open until rejected or, once the policy''s approvals are in and its checks pass, done (the stage changed, and a deployment it names switched to the version) or approved (the stage changed; the switch of its deployment waits for a role that may deploy).';
COMMENT ON TABLE indb.promotion_requests IS 'A challenger or retrained version a retraining policy with promote = approval proposes for a deployment; decided by its stage request (stage_request, indb.stage_requests): approved when that is approved, done when the deployment switched to it (db.promote / indb deployments promote, or the approval itself).';

-- Models as files (issue 14.3): a version registered by `indb models import` remembers where it
-- came from and the lineage its indb-model.json named. The training set itself does not travel
-- (rows of another database, often personal data); lineage, verify and reproduce say so when
-- it is not in this database rather than fail on a missing table.
CREATE TABLE IF NOT EXISTS indb.model_imports (
    model                VARCHAR NOT NULL,
    version              INTEGER NOT NULL,
    source_model         VARCHAR NOT NULL,
    source_version       INTEGER NOT NULL,
    sha256               VARCHAR NOT NULL,
    training_set         VARCHAR,
    training_set_version INTEGER,
    imported_by          VARCHAR NOT NULL,
    imported_at          TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    PRIMARY KEY (model, version)
);
COMMENT ON TABLE indb.model_imports IS 'Versions registered from an exported folder (indb models import): the model and version they were exported as, their sha256, and the training set the export named (which does not travel with it).';

-- indb.lineage (018) gains the edge of an imported version: model -> the model version it was
-- exported as (imported_from), whose detail says whether the training set its export named is
-- in this database. The rest of the view is 018's, unchanged.
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
FROM indb.deployment_history AS h
UNION ALL
SELECT 'model', i.model, CAST(i.version AS BIGINT),
       'model', i.source_model, CAST(i.source_version AS BIGINT),
       'imported_from',
       'exported as ' || i.source_model || ' version ' || CAST(i.source_version AS VARCHAR)
           || CASE WHEN i.training_set IS NULL THEN '; its export named no training set'
                   WHEN EXISTS (SELECT 1 FROM indb.training_sets AS t
                                WHERE t.name = i.training_set AND t.version = i.training_set_version)
                   THEN '; its training set ' || i.training_set || '@'
                        || CAST(i.training_set_version AS VARCHAR) || ' is in this database too'
                   ELSE '; its training set ' || i.training_set || '@'
                        || CAST(i.training_set_version AS VARCHAR)
                        || ' is not in this database (training sets do not travel with an export)'
              END
FROM indb.model_imports AS i;
COMMENT ON VIEW indb.lineage IS 'Every lineage edge, one row each (from_kind, from_name, from_version -> to_kind, to_name, to_version, relation, detail): model version -> training run -> training set version -> feature set versions -> source; model -> parent version; training set -> spine; deployment -> version it serves (serves) and served before (served, from indb.deployment_history); an imported version -> the model version it was exported as (imported_from, in another database; the detail says whether the training set its export named is in this one). Prediction rows: <table>_predictions.model_version.';

-- Per-prediction explanations (engine/explanations.py). {slots} take only identifiers quoted
-- by indb.identifiers.

-- name: model_version_row
SELECT * FROM indb.model_versions WHERE model = $model AND version = $version;

-- name: create_contributions_table
-- One row per explained request row: the contributions in the order of the version's input
-- columns (<table>_explanation_features), base + their sum is the raw output; error is NULL
-- for exact methods. Written only by the scoring trigger. One list per request rather than one
-- row per column: a third of the time to write (benchmarks/RESULTS.md).
CREATE TABLE IF NOT EXISTS {contributions} (
    id BIGINT NOT NULL,
    model VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    contributions DOUBLE[] NOT NULL,
    base DOUBLE,
    error DOUBLE
);

-- name: create_features_table
-- Which input column each position of a version's contributions is.
CREATE TABLE IF NOT EXISTS {features} (
    model VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    feature VARCHAR NOT NULL
);

-- name: create_explanations_view
-- One row per request row and request column: SELECT * FROM <table>_explanations WHERE id = 42
-- ORDER BY abs(contribution) DESC; base + sum(contribution) over an id is the raw output.
CREATE OR REPLACE VIEW {view} AS
SELECT c.id, f.feature, c.contributions[f.position] AS contribution, c.base, c.error
FROM {contributions} AS c
JOIN {features} AS f ON f.model = c.model AND f.model_version = c.model_version;

-- name: delete_features
DELETE FROM {features} WHERE model = $model AND model_version = $version;

-- name: insert_feature
INSERT INTO {features} (model, model_version, position, feature) VALUES ($model, $version, $position, $feature);

-- name: set_explain_method
UPDATE indb.deployments SET explain_method = $method WHERE table_name = $table_name;

-- name: explain_method
SELECT explain_method FROM indb.deployments WHERE table_name = $table_name;

-- name: explained_deployments
SELECT table_name, model, version, explain_method FROM indb.deployments
WHERE explain_method IS NOT NULL ORDER BY table_name;

-- name: create_explain_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS {body};

-- name: comment_explain_macro
COMMENT ON MACRO {name} IS {comment};

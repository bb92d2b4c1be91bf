-- Per-prediction explanations (engine/explanations.py). {slots} take only identifiers quoted
-- by indb.identifiers.

-- name: model_version_row
SELECT * FROM indb.model_versions WHERE model = $model AND version = $version;

-- name: create_explanations_table
-- One row per request row and request column: base + sum(contribution) over an id is the
-- model's raw output; error is NULL for exact methods. Written only by the scoring trigger.
CREATE TABLE IF NOT EXISTS {explanations} (
    id BIGINT NOT NULL,
    feature VARCHAR NOT NULL,
    contribution DOUBLE,
    base DOUBLE,
    error DOUBLE
);

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

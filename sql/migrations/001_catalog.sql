-- indb catalog, version 1: models, versions, aliases, deployments, audit log.
-- Written once in DuckDB's dialect; other backends transpile it with sqlglot.
-- Append-only: change the catalog with a new numbered file, never by editing this one.

CREATE TABLE IF NOT EXISTS indb.models (
    name        VARCHAR PRIMARY KEY,
    description VARCHAR,
    created_by  VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.models IS 'One row per registered model name; versions are in indb.model_versions.';

CREATE TABLE IF NOT EXISTS indb.model_versions (
    model       VARCHAR NOT NULL REFERENCES indb.models (name),
    version     INTEGER NOT NULL,
    onnx        BLOB NOT NULL,
    sha256      VARCHAR NOT NULL,
    size_bytes  BIGINT NOT NULL,
    task        VARCHAR NOT NULL,
    signature   VARCHAR NOT NULL,
    inputs      JSON NOT NULL,
    outputs     JSON NOT NULL,
    classes     JSON,
    recipe      JSON NOT NULL,
    metrics     JSON,
    tags        JSON,
    conversion  JSON,
    description VARCHAR,
    created_by  VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, version)
);
COMMENT ON TABLE indb.model_versions IS 'Serialized ONNX models with their sha256, SQL signature, classes and training recipe (JSON, never pickle).';

CREATE TABLE IF NOT EXISTS indb.model_aliases (
    model      VARCHAR NOT NULL,
    alias      VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, alias)
);
COMMENT ON TABLE indb.model_aliases IS 'Stages such as production and staging: each alias names one version of a model.';

CREATE TABLE IF NOT EXISTS indb.deployments (
    table_name  VARCHAR PRIMARY KEY,
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    runtime     VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.deployments IS 'Which model version scores inserts into which request table.';

CREATE SEQUENCE IF NOT EXISTS indb.audit_log_id;
CREATE TABLE IF NOT EXISTS indb.audit_log (
    id      BIGINT NOT NULL DEFAULT nextval('indb.audit_log_id'),
    logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    actor   VARCHAR NOT NULL,
    action  VARCHAR NOT NULL,
    object  VARCHAR NOT NULL,
    details JSON
);
COMMENT ON TABLE indb.audit_log IS 'Every change indb makes to models and deployments, who made it and when.';

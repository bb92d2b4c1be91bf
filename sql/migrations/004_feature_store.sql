-- Feature store: entities, versioned feature sets and their features, training sets with
-- their lineage, feature statistics, and which training set each model version learnt from.

CREATE TABLE IF NOT EXISTS indb.entities (
    name        VARCHAR PRIMARY KEY,
    keys        JSON NOT NULL,
    description VARCHAR,
    created_by  VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.entities IS 'What features describe (customer, card, ...): a name and its key columns (JSON list).';

CREATE TABLE IF NOT EXISTS indb.feature_sets (
    name         VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    entity       VARCHAR NOT NULL REFERENCES indb.entities (name),
    keys         JSON NOT NULL,
    event_time   VARCHAR NOT NULL,
    created_time VARCHAR,
    ttl_seconds  DOUBLE,
    table_name   VARCHAR NOT NULL,
    online_table VARCHAR NOT NULL,
    schema_hash  VARCHAR NOT NULL,
    time_ties    BOOLEAN NOT NULL DEFAULT false,
    ties_checked BIGINT,
    source       VARCHAR,
    description  VARCHAR,
    created_by   VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE indb.feature_sets IS 'Versioned feature sets: history table (one row per entity and event time), latest-values table, event/created time columns and ttl. A schema change makes a new version.';

CREATE TABLE IF NOT EXISTS indb.features (
    feature_set VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    name        VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    data_type   VARCHAR NOT NULL,
    description VARCHAR,
    PRIMARY KEY (feature_set, version, name)
);
COMMENT ON TABLE indb.features IS 'The features of each feature set version, with their SQL types and descriptions.';

CREATE TABLE IF NOT EXISTS indb.training_sets (
    name         VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    table_name   VARCHAR NOT NULL,
    definition   JSON NOT NULL,
    spine        VARCHAR NOT NULL,
    label        VARCHAR,
    ttl_seconds  DOUBLE,
    cutoff       TIMESTAMP,
    row_count    BIGINT NOT NULL,
    content_hash VARCHAR NOT NULL,
    description  VARCHAR,
    created_by   VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE indb.training_sets IS 'Materialized point-in-time training sets: their table, the definition to rebuild them (JSON), row count and content hash.';

CREATE TABLE IF NOT EXISTS indb.training_set_features (
    training_set         VARCHAR NOT NULL,
    version              INTEGER NOT NULL,
    feature_set          VARCHAR NOT NULL,
    feature_set_version  INTEGER NOT NULL,
    features             JSON NOT NULL,
    PRIMARY KEY (training_set, version, feature_set)
);
COMMENT ON TABLE indb.training_set_features IS 'Lineage: the feature set versions (and features) each training set version was built from.';

CREATE TABLE IF NOT EXISTS indb.model_training_sets (
    model                 VARCHAR NOT NULL,
    version               INTEGER NOT NULL,
    training_set          VARCHAR NOT NULL,
    training_set_version  INTEGER NOT NULL,
    PRIMARY KEY (model, version)
);
COMMENT ON TABLE indb.model_training_sets IS 'Lineage: the training set version each model version was trained on.';

CREATE TABLE IF NOT EXISTS indb.feature_statistics (
    scope          VARCHAR NOT NULL,
    name           VARCHAR NOT NULL,
    version        INTEGER NOT NULL,
    feature        VARCHAR NOT NULL,
    data_type      VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,
    count          BIGINT NOT NULL,
    nulls          BIGINT NOT NULL,
    distinct_count BIGINT NOT NULL,
    min            DOUBLE,
    max            DOUBLE,
    mean           DOUBLE,
    stddev         DOUBLE,
    quantiles      JSON,
    histogram      JSON,
    top_values     JSON,
    computed_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (scope, name, version, feature)
);
COMMENT ON TABLE indb.feature_statistics IS 'Per feature of a feature set version (scope feature_set) or training set version (scope training_set): count, nulls, distinct, min, max, mean, stddev, quantiles, histogram; top values for categorical features.';

-- Deployments that score from stored features (deploy(..., features_from=...)): the feature
-- set versions, the features recorded with each prediction, and the join the trigger runs.
ALTER TABLE indb.deployments ADD COLUMN features JSON;

CREATE OR REPLACE VIEW indb.model_lineage AS
SELECT m.model, m.version AS model_version, m.training_set, m.training_set_version,
       f.feature_set, f.feature_set_version, f.features
FROM indb.model_training_sets AS m
JOIN indb.training_set_features AS f
  ON f.training_set = m.training_set AND f.version = m.training_set_version;
COMMENT ON VIEW indb.model_lineage IS 'Model version -> training set version -> feature set versions, one row per feature set.';

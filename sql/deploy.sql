-- Per-deployment objects: the request table, its predictions, its ground truth and the
-- view over all three. {slots} take only identifiers quoted by indb.identifiers.

-- name: create_sequence
CREATE SEQUENCE IF NOT EXISTS {sequence};

-- name: create_request_table
CREATE TABLE {table} (
    id BIGINT NOT NULL DEFAULT nextval({sequence_literal}),
    {feature_columns},
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- name: add_id_column
ALTER TABLE {table} ADD COLUMN id BIGINT DEFAULT nextval({sequence_literal});

-- name: create_predictions_table
CREATE TABLE IF NOT EXISTS {predictions} (
    id BIGINT NOT NULL,
    model VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    runtime VARCHAR NOT NULL,
    prediction {prediction_type},
    scored_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    role VARCHAR NOT NULL DEFAULT 'champion',
    served BOOLEAN NOT NULL DEFAULT true
);

-- name: add_arm_columns
-- Prediction tables from before challengers (migration 015): which model made the row
-- ('champion' | 'challenger') and whether it is the one the application sees.
ALTER TABLE {predictions} ADD COLUMN role VARCHAR NOT NULL DEFAULT 'champion';

-- name: add_served_column
ALTER TABLE {predictions} ADD COLUMN served BOOLEAN NOT NULL DEFAULT true;

-- name: add_probability_column
ALTER TABLE {predictions} ADD COLUMN {column} DOUBLE;

-- name: add_recorded_column
-- The value of a stored feature a prediction was made from (features_from deployments).
ALTER TABLE {predictions} ADD COLUMN {column} {column_type};

-- name: create_ground_truth_table
CREATE TABLE IF NOT EXISTS {ground_truth} (
    id BIGINT NOT NULL,
    label {prediction_type} NOT NULL,
    observed_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- name: create_scored_view
-- Request rows with their served prediction (challengers' shadow rows are not) and the latest
-- label recorded for them.
CREATE OR REPLACE VIEW {view} AS
SELECT {request_columns},
       p.model, p.model_version, p.runtime, p.prediction, {probability_columns}p.scored_at,
       g.label, g.observed_at
FROM {table} AS r
LEFT JOIN {predictions} AS p ON p.id = r.id AND p.served
LEFT JOIN (
    SELECT id, arg_max(label, observed_at) AS label, max(observed_at) AS observed_at
    FROM {ground_truth} GROUP BY id
) AS g ON g.id = r.id;

-- name: unscored_rows
(SELECT * FROM {table} AS r WHERE NOT EXISTS (SELECT 1 FROM {predictions} AS p WHERE p.id = r.id AND p.served))

-- name: drop_view
DROP VIEW IF EXISTS {view};

-- name: drop_table
DROP TABLE IF EXISTS {table};

-- name: drop_sequence
DROP SEQUENCE IF EXISTS {sequence};

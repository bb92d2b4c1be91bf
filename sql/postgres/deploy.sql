-- PostgreSQL versions of deployment statements.

-- name: create_scored_view
CREATE OR REPLACE VIEW {view} AS
SELECT {request_columns},
       p.model, p.model_version, p.runtime, p.prediction, {probability_columns}p.scored_at,
       g.label, g.observed_at
FROM {table} AS r
LEFT JOIN {predictions} AS p ON p.id = r.id
LEFT JOIN (
    SELECT DISTINCT ON (id) id, label, observed_at
    FROM {ground_truth} ORDER BY id, observed_at DESC
) AS g ON g.id = r.id;

-- name: create_row_predictions_view
CREATE OR REPLACE VIEW {predictions} AS
SELECT id, model, model_version, runtime, prediction, {probability_columns}scored_at FROM {table};

-- name: add_row_prediction_columns
ALTER TABLE {table}
    ADD COLUMN IF NOT EXISTS model TEXT,
    ADD COLUMN IF NOT EXISTS model_version INTEGER,
    ADD COLUMN IF NOT EXISTS runtime TEXT,
    ADD COLUMN IF NOT EXISTS prediction {prediction_type},
    ADD COLUMN IF NOT EXISTS scored_at TIMESTAMP DEFAULT current_timestamp;

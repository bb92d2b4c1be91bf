-- The model summary the README's tour queries, and transformations (feature-engineering
-- pipelines without a final estimator, compiled to SQL views).
-- indb.models stays the table other catalog tables reference; its summary is a view.

CREATE OR REPLACE VIEW indb.model_summary AS
SELECT m.name,
       count(v.version) AS versions,
       max(v.version) AS latest_version,
       (SELECT a.version FROM indb.model_aliases a
         WHERE a.model = m.name AND a.alias = 'production') AS production_version,
       min(v.task) AS task,
       m.description,
       m.created_at
FROM indb.models m LEFT JOIN indb.model_versions v ON v.model = m.name
GROUP BY m.name, m.description, m.created_at;
COMMENT ON VIEW indb.model_summary IS 'One row per model: how many versions, the latest, the one aliased production (what db.models() and indb models list show).';

CREATE TABLE IF NOT EXISTS indb.transforms (
    name        VARCHAR PRIMARY KEY,
    onnx        BLOB NOT NULL,
    sha256      VARCHAR NOT NULL,
    inputs      JSON NOT NULL,
    outputs     JSON NOT NULL,
    source      VARCHAR,
    recipe      JSON NOT NULL,
    created_by  VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.transforms IS 'Feature-engineering pipelines without a final estimator: ONNX bytes, input columns, output columns, and the table their view reads.';

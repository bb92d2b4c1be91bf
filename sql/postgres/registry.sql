-- PostgreSQL versions of registry statements whose DuckDB functions it lacks.

-- name: list_models
SELECT * FROM indb.model_summary ORDER BY name;

-- PostgreSQL versions of registry statements whose DuckDB functions it lacks.

-- name: list_models
SELECT m.name,
       count(v.version) AS versions,
       max(v.version) AS latest_version,
       (SELECT a.version FROM indb.model_aliases a
         WHERE a.model = m.name AND a.alias = 'production') AS production_version,
       min(v.task) AS task,
       m.description,
       m.created_at
FROM indb.models m LEFT JOIN indb.model_versions v ON v.model = m.name
GROUP BY m.name, m.description, m.created_at
ORDER BY m.name;

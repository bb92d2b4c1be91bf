-- Collaboration (issue 14.6): owners, comments, descriptions and tags, search. DuckDB runs the
-- writes from the Python API (indb.governance.collaboration); PostgreSQL calls the functions of
-- sql/postgres/collaboration.sql, which record session_user.

-- name: owners
SELECT owner, added_by, added_at FROM indb.owners
WHERE object_kind = $kind AND object_name = $name ORDER BY owner;

-- name: comments
SELECT id, version, author, body, created_at FROM indb.comments
WHERE object_kind = $kind AND object_name = $name ORDER BY id;

-- name: object_names
SELECT object_name FROM indb.catalog_objects WHERE object_kind = $kind ORDER BY object_name;

-- name: object
SELECT object_kind, object_name, description, CAST(tags AS VARCHAR) AS tags, owners
FROM indb.catalog_objects WHERE object_kind = $kind AND object_name = $name;

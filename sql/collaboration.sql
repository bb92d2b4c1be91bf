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

-- name: creator
-- Who created an object, as the catalog recorded it (a feature set: its first version's
-- creator; a job: its owner column). sql/postgres/collaboration.sql: indb.collaboration_creator.
SELECT created_by FROM (
    SELECT 'model' AS kind, name, created_by FROM indb.models
    UNION ALL
    SELECT 'feature_set', f.name, f.created_by FROM indb.feature_sets AS f
    JOIN (SELECT name, min(version) AS version FROM indb.feature_sets GROUP BY name) AS first
      ON first.name = f.name AND first.version = f.version
    UNION ALL
    SELECT 'monitor', name, created_by FROM indb.monitors
    UNION ALL
    SELECT 'job', name, owner FROM indb.jobs
) AS c WHERE kind = $kind AND name = $name;

-- name: insert_owner
INSERT INTO indb.owners (object_kind, object_name, owner, added_by) VALUES ($kind, $name, $owner, $user);

-- name: delete_owner
DELETE FROM indb.owners WHERE object_kind = $kind AND object_name = $name AND owner = $owner;

-- name: version_exists
SELECT count(*) FROM (
    SELECT 'model' AS kind, model AS name, version FROM indb.model_versions
    UNION ALL
    SELECT 'feature_set', name, version FROM indb.feature_sets
) AS v WHERE kind = $kind AND name = $name AND version = $version;

-- name: insert_comment
INSERT INTO indb.comments (object_kind, object_name, version, author, body)
VALUES ($kind, $name, $version, $user, $body) RETURNING id;

-- name: describe_feature_set
-- The latest version's description and tags.
UPDATE indb.feature_sets SET description = $description, tags = CAST($tags AS JSON)
WHERE name = $name AND version = (SELECT max(version) FROM indb.feature_sets WHERE name = $name);

-- name: describe_monitor
UPDATE indb.monitors SET description = $description, tags = CAST($tags AS JSON) WHERE name = $name;

-- name: describe_job
-- A job's description is its comment column.
UPDATE indb.jobs SET comment = $description, tags = CAST($tags AS JSON),
    updated_at = (current_timestamp AT TIME ZONE 'UTC')
WHERE name = $name;

-- name: search
-- Case-insensitive substring (strpos: no LIKE wildcards, so % and _ are plain characters)
-- over names, descriptions, tags, owners and comments; one row per object with where it matched.
SELECT * FROM (
    SELECT o.object_kind, o.object_name, o.description, CAST(o.tags AS VARCHAR) AS tags, o.owners,
           coalesce(strpos(lower(o.object_name), lower($text)) > 0, false) AS in_name,
           coalesce(strpos(lower(o.description), lower($text)) > 0, false) AS in_description,
           coalesce(strpos(lower(CAST(o.tags AS VARCHAR)), lower($text)) > 0, false) AS in_tags,
           coalesce(strpos(lower(o.owners), lower($text)) > 0, false) AS in_owners,
           (SELECT count(*) FROM indb.comments AS c
            WHERE c.object_kind = o.object_kind AND c.object_name = o.object_name
              AND strpos(lower(c.body), lower($text)) > 0) AS in_comments
    FROM indb.catalog_objects AS o
) AS s
WHERE in_name OR in_description OR in_tags OR in_owners OR in_comments > 0
ORDER BY object_kind, object_name;

-- name: forget_owners
-- A dropped monitor or job takes its owners and comments with it (PostgreSQL: the row trigger
-- indb.forget_collaboration does this on the server).
DELETE FROM indb.owners WHERE object_kind = $kind AND object_name = $name;

-- name: forget_comments
DELETE FROM indb.comments WHERE object_kind = $kind AND object_name = $name;

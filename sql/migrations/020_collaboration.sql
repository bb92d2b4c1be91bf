-- Collaboration (issue 14.6): owners (users or roles) and comments on models, feature sets,
-- monitors and jobs; a description and tags on each; one view over all four that search reads.
-- On PostgreSQL only the SECURITY DEFINER functions of sql/postgres/collaboration.sql write
-- owners and comments (recording session_user); on DuckDB the Python API (the OS user).

-- Tags (a JSON object, as model versions' tags) where an object kind had none; monitors also
-- get a description (jobs already have one: their comment column).
ALTER TABLE indb.feature_sets ADD COLUMN tags JSON;
ALTER TABLE indb.monitors ADD COLUMN description VARCHAR;
ALTER TABLE indb.monitors ADD COLUMN tags JSON;
ALTER TABLE indb.jobs ADD COLUMN tags JSON;

CREATE TABLE IF NOT EXISTS indb.owners (
    object_kind VARCHAR NOT NULL,
    object_name VARCHAR NOT NULL,
    owner       VARCHAR NOT NULL,
    added_by    VARCHAR NOT NULL,
    added_at    TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    PRIMARY KEY (object_kind, object_name, owner),
    CHECK (object_kind IN ('model', 'feature_set', 'monitor', 'job'))
);
COMMENT ON TABLE indb.owners IS 'Who owns a model, feature set, monitor or job: a user or a role (PostgreSQL: a role name; a member of an owning role counts as an owner). added_by is who added the row.';

CREATE SEQUENCE IF NOT EXISTS indb.comment_id;
CREATE TABLE IF NOT EXISTS indb.comments (
    id          BIGINT NOT NULL DEFAULT nextval('indb.comment_id') PRIMARY KEY,
    object_kind VARCHAR NOT NULL,
    object_name VARCHAR NOT NULL,
    version     INTEGER,
    author      VARCHAR NOT NULL,
    body        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    CHECK (object_kind IN ('model', 'feature_set', 'monitor', 'job')),
    CHECK (length(body) > 0)
);
COMMENT ON TABLE indb.comments IS 'Comments on a model (version: one of its versions, or NULL for the model), feature set, monitor or job; author is who wrote it (PostgreSQL: session_user, recorded by indb.add_comment).';

-- One row per object. Models: the model's own description (else its default version's) and its
-- default version's tags (the version aliased production, else the latest: as predict_<model>
-- and update_model pick it). Feature sets: the latest version's. Owners sorted, joined by ', '.
CREATE OR REPLACE VIEW indb.catalog_objects AS
WITH owner_lists AS (
    SELECT object_kind, object_name, string_agg(owner, ', ' ORDER BY owner) AS owners
    FROM indb.owners
    GROUP BY object_kind, object_name
), latest_versions AS (
    SELECT model, max(version) AS version FROM indb.model_versions GROUP BY model
), default_versions AS (
    SELECT l.model, coalesce(a.version, l.version) AS version
    FROM latest_versions AS l
    LEFT JOIN indb.model_aliases AS a ON a.model = l.model AND a.alias = 'production'
), latest_feature_sets AS (
    SELECT name, max(version) AS version FROM indb.feature_sets GROUP BY name
), objects AS (
    SELECT 'model' AS object_kind, m.name AS object_name,
           coalesce(m.description, v.description) AS description, v.tags AS tags
    FROM indb.models AS m
    LEFT JOIN default_versions AS l ON l.model = m.name
    LEFT JOIN indb.model_versions AS v ON v.model = l.model AND v.version = l.version
    UNION ALL
    SELECT 'feature_set', f.name, f.description, f.tags
    FROM indb.feature_sets AS f
    JOIN latest_feature_sets AS l ON l.name = f.name AND l.version = f.version
    UNION ALL
    SELECT 'monitor', name, description, tags FROM indb.monitors
    UNION ALL
    SELECT 'job', name, comment, tags FROM indb.jobs
)
SELECT o.object_kind, o.object_name, o.description, o.tags, w.owners
FROM objects AS o
LEFT JOIN owner_lists AS w ON w.object_kind = o.object_kind AND w.object_name = o.object_name;
COMMENT ON VIEW indb.catalog_objects IS 'Every model, feature set, monitor and job with its description, tags (JSON) and owners (sorted, joined with '', ''): what indb search reads; query it from SQL.';

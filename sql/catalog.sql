-- Statements that read and write the catalog. Parameters are $name, bound by the backend.

-- name: schema_version
SELECT coalesce(max(version), 0) AS version FROM indb.schema_migrations;

-- name: applied_migrations
SELECT version FROM indb.schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO indb.schema_migrations (version, name) VALUES ($version, $name);

-- name: insert_audit
INSERT INTO indb.audit_log (actor, action, object, details) VALUES ($actor, $action, $object, $details);

-- name: bootstrap
CREATE SCHEMA IF NOT EXISTS indb;
CREATE TABLE IF NOT EXISTS indb.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- name: has_catalog
SELECT count(*) FROM information_schema.tables
WHERE table_schema = 'indb' AND table_name = 'schema_migrations';

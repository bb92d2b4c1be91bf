-- name: bootstrap
CREATE SCHEMA IF NOT EXISTS indb;
CREATE TABLE IF NOT EXISTS indb.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- name: has_catalog
-- pg_tables lists tables whatever the user's privileges (information_schema hides them).
SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'indb' AND tablename = 'schema_migrations';

-- name: bootstrap
CREATE SCHEMA IF NOT EXISTS indb;
CREATE TABLE IF NOT EXISTS indb.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

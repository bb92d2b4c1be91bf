-- Statements run at once on cursors of one DuckDB instance (DuckDBBackend.workers).

-- name: attach_scratch
-- An in-memory database for one monitor run's window: committed there, every cursor sees it,
-- and the database file is not written.
ATTACH ':memory:' AS {scratch};

-- name: detach_scratch
DETACH {scratch};

-- name: use_catalog
-- A new cursor starts in the instance's default database; the backend's may be another.
USE {catalog};

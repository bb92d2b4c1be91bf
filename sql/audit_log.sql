-- The audit log's hash chain where indb computes it (DuckDB; PostgreSQL uses triggers,
-- sql/postgres/audit.sql).

-- name: next_id
SELECT nextval('indb.audit_log_id') AS id;

-- name: last_hash
SELECT row_hash FROM indb.audit_log ORDER BY id DESC LIMIT 1;

-- name: insert_chained
INSERT INTO indb.audit_log (id, logged_at, actor, action, object, details, prev_hash, row_hash)
VALUES ($id, $logged_at, $actor, $action, $object, $details, $prev_hash, $row_hash);

-- name: chain
SELECT id, logged_at, actor, action, object, CAST(details AS VARCHAR) AS details, prev_hash, row_hash
FROM indb.audit_log ORDER BY id;

-- DuckDB versions of deployment statements (sql/deploy.sql).

-- name: create_request_table
-- id and created_at are the server's (README, "Request tables"). DuckDB has no roles and no
-- BEFORE triggers: CHECKs refuse a client's own values. now() is the transaction's start, the
-- default's value, cast once (comparing TIMESTAMP with TIMESTAMPTZ row by row doubled the
-- time to store 1M rows; as written the CHECKs cost nothing measurable). An id beyond the
-- sequence would collide with one it gives later; an id it already gave is not refused (a
-- key would double the time to store the rows). PostgreSQL refuses both by privilege
-- (indb.grant_deployment).
CREATE TABLE {table} (
    id BIGINT NOT NULL DEFAULT nextval({sequence_literal}) CHECK (id <= currval({sequence_literal})),
    {feature_columns},
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp CHECK (created_at = CAST(now() AS TIMESTAMP))
);

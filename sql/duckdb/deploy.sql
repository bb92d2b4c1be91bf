-- DuckDB versions of deployment statements (sql/deploy.sql).

-- name: create_request_table
-- id and created_at are the server's (README, "Request tables"). DuckDB has no roles and no
-- BEFORE triggers: CHECKs refuse a client's own values. now() is the transaction's start, the
-- default's value; an id beyond the sequence would collide with an id it gives later (one the
-- sequence already gave is not refused: a key would double the cost of storing the rows).
-- PostgreSQL refuses both by privilege (indb.grant_deployment).
CREATE TABLE {table} (
    id BIGINT NOT NULL DEFAULT nextval({sequence_literal}) CHECK (id <= currval({sequence_literal})),
    {feature_columns},
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp CHECK (created_at = now())
);

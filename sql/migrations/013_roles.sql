-- The names of indb's PostgreSQL roles, one row per purpose, recorded by the superuser who
-- installs indb (indb.backends.postgres_roles): every later grant, hint and `indb doctor`
-- uses them. Empty on DuckDB, which has no roles. Written by the install only: no role is
-- granted INSERT, UPDATE or DELETE on it (renaming a role is a superuser's ALTER ROLE).
CREATE TABLE IF NOT EXISTS indb.roles (
    purpose     VARCHAR PRIMARY KEY,
    role_name   VARCHAR NOT NULL UNIQUE,
    created     BOOLEAN NOT NULL,
    recorded_at TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    CHECK (purpose IN ('reader', 'app', 'developer', 'approver', 'admin'))
);
COMMENT ON TABLE indb.roles IS 'The PostgreSQL role indb grants each purpose (reader, app, developer, approver, admin) to, chosen at install; created: indb created the role (false: it existed and was adopted).';

-- The names of indb's roles (indb.backends.postgres_roles): read at connect, recorded once.

-- name: access
-- Whether this role may read indb.roles, and the schema's comment (which repeats the names for
-- roles that may not; anyone may read a comment). By oid: naming indb.roles without USAGE on
-- the schema is itself an error.
SELECT coalesce(has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'), false)
           AS readable,
       obj_description(n.oid, 'pg_namespace') AS comment
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = 'indb'
LEFT JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = 'roles';

-- name: recorded
SELECT purpose, role_name FROM indb.roles ORDER BY purpose;

-- name: existing
-- Roles of these names that exist already, and what would make granting to them wrong.
SELECT rolname, rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = ANY($names);

-- name: record
INSERT INTO indb.roles (purpose, role_name, created) VALUES ($purpose, $role_name, $created);

-- name: installed_before
-- Whether privileges.sql ran here before names were configurable (and so granted to the
-- default roles): the default reader role may use schema indb.
SELECT coalesce(bool_or(has_schema_privilege(r.oid, 'indb', 'USAGE')), false)
FROM pg_catalog.pg_roles AS r WHERE r.rolname = $reader;

-- What `indb doctor` asks a PostgreSQL server.

-- name: server
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS version,
       current_user AS user_name,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
       current_database() AS database_name,
       current_setting('shared_preload_libraries') AS preload;

-- name: extensions
SELECT name, installed_version FROM pg_available_extensions WHERE name IN ('plpython3u', 'pg_cron');

-- name: catalog_access
SELECT has_schema_privilege('indb', 'USAGE') AS usage,
       has_table_privilege('indb.model_versions', 'SELECT') AS read_models,
       has_table_privilege('indb.model_versions', 'INSERT') AS register_models
WHERE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'indb');

-- name: cron_database
SELECT current_setting('cron.database_name', true) AS cron_database;

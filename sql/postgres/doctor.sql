-- What `indb doctor` asks a PostgreSQL server.

-- name: server
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS version,
       current_user AS user_name,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
       current_database() AS database_name,
       (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries') AS preload;

-- name: extensions
SELECT name, installed_version FROM pg_available_extensions WHERE name IN ('plpython3u', 'pg_cron');

-- name: catalog_access
-- By oid: naming indb.<table> without USAGE on schema indb is itself an error. $roles: the
-- names of indb's roles in this database (indb.roles).
SELECT has_schema_privilege(n.oid, 'USAGE') AS usage,
       coalesce(has_table_privilege(v.oid, 'SELECT'), false) AS read_models,
       coalesce(has_table_privilege(v.oid, 'INSERT'), false) AS register_models,
       (SELECT string_agg(r.rolname, ', ' ORDER BY r.rolname) FROM pg_catalog.pg_roles AS r
        WHERE r.rolname = ANY($roles) AND pg_has_role(current_user, r.oid, 'MEMBER')) AS roles
FROM pg_catalog.pg_namespace AS n
LEFT JOIN pg_catalog.pg_class AS v ON v.relnamespace = n.oid AND v.relname = 'model_versions'
WHERE n.nspname = 'indb';

-- name: cron_database
SELECT current_setting('cron.database_name', true) AS cron_database;

-- name: job_cron_entries
-- Each scheduled indb job with its pg_cron entry (absent: the entry was removed behind indb).
SELECT j.name, j.enabled, j.cron_job_id, c.jobid IS NOT NULL AS present, c.active,
       c.database = current_database() AS same_database
FROM indb.jobs AS j LEFT JOIN cron.job AS c ON c.jobid = j.cron_job_id
WHERE j.schedule IS NOT NULL ORDER BY j.name;

-- name: job_tick
-- Whether jobs need pg_cron's per-minute indb.tick (timeouts, on_alert) and whether it exists.
SELECT EXISTS (SELECT 1 FROM indb.jobs WHERE on_alert IS NOT NULL OR timeout_seconds IS NOT NULL) AS needed,
       EXISTS (SELECT 1 FROM cron.job WHERE jobname = 'indb.tick' AND active) AS present;

-- name: scheduled_jobs
SELECT count(*) FROM indb.jobs WHERE schedule IS NOT NULL;

-- name: missing_time_indexes
-- Deployments whose tables lack an index on their times (tables deployed before indb made
-- them, sql/postgres/deploy.sql add_scored_at_index): each monitor run reads their whole
-- history. One row per index missing, by its name's suffix.
SELECT d.table_name, d.schema_name, d.mode, i.suffix
FROM indb.deployments AS d
CROSS JOIN (VALUES ('p_time'), ('gt_id'), ('gt_time')) AS i (suffix)
WHERE pg_catalog.to_regclass(pg_catalog.format('%I.%I', d.schema_name, d.table_name || '_' || i.suffix)) IS NULL
ORDER BY d.table_name, i.suffix;

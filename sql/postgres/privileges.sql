-- PostgreSQL privileges: indb's roles, nothing for PUBLIC, then one GRANT per need, each with
-- the reason (pg_cron's style). Run in file order by the PostgreSQL backend as the role that
-- installed indb (a superuser), again whenever this file, the catalog's tables or the role
-- names change.
--
-- Roles by purpose; their names are chosen at install and recorded in indb.roles (default
-- indb_<purpose>; indb.backends.postgres_roles). Statements name them through the slots
-- {reader} ... {admin} (filled from indb.roles, PostgresBackend.role_slots); functions that
-- grant at run time read indb.roles through indb.role_name(purpose).
--   reader     reads the catalog, monitor results and (per deployment) predictions;
--              calls predict_* functions
--   app        inserts into request tables (per deployment), reads their predictions,
--              records ground truth, calls predict_* functions; no catalog access
--   developer  what a reader may, and registers models, sets non-production aliases,
--              edits tags/descriptions, writes feature-store and monitor definitions
--   approver   what a developer may, and moves the production alias
--   admin      what an approver may, and writes deployments and humility rules: as
--              trusted as the superuser, since scoring triggers act on those rows

-- name: create_roles
-- The roles indb.roles names (recorded just before, in the same transaction), unless they exist.
DO $indb$
DECLARE
    r text;
BEGIN
    FOR r IN SELECT role_name FROM indb.roles ORDER BY purpose LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$indb$;

-- name: create_role_name_function
-- The role a purpose is granted to, for functions that grant at run time (a deploy, a new
-- function): they follow indb.roles, never a name written into their body.
CREATE OR REPLACE FUNCTION indb.role_name(purpose text) RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    chosen text;
BEGIN
    SELECT r.role_name INTO chosen FROM indb.roles AS r WHERE r.purpose = role_name.purpose;
    IF chosen IS NULL THEN
        RAISE EXCEPTION 'indb.roles records no role for %: connect once with indb as a superuser', purpose;
    END IF;
    RETURN chosen;
END
$indb$;

-- name: developer_reads
-- A developer looks at everything a reader does.
GRANT {reader} TO {developer};

-- name: approver_develops
-- An approver does what a developer does, and also moves production.
GRANT {developer} TO {approver};

-- name: admin_approves
-- An admin does what an approver does, and also deploys.
GRANT {approver} TO {admin};

-- name: revoke_schema
-- Nothing in schema indb is anyone's by default.
REVOKE ALL ON SCHEMA indb FROM PUBLIC;

-- name: revoke_tables
REVOKE ALL ON ALL TABLES IN SCHEMA indb FROM PUBLIC;

-- name: revoke_sequences
REVOKE ALL ON ALL SEQUENCES IN SCHEMA indb FROM PUBLIC;

-- name: revoke_functions
-- Functions are executable by PUBLIC unless revoked; the trigger functions run as indb's owner.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA indb FROM PUBLIC;

-- name: revoke_procedures
REVOKE ALL ON ALL PROCEDURES IN SCHEMA indb FROM PUBLIC;

-- name: schema_usage
-- Readers and applications name indb's functions and (readers) tables.
GRANT USAGE ON SCHEMA indb TO {reader}, {app};

-- name: reader_selects
-- The catalog, monitor results, alerts and the audit log are for every reader to see.
GRANT SELECT ON ALL TABLES IN SCHEMA indb TO {reader};

-- name: reader_sequences
-- Readers may see where the catalog's sequences stand (no nextval).
GRANT SELECT ON ALL SEQUENCES IN SCHEMA indb TO {reader};

-- name: developer_sequences
-- Developers insert catalog rows whose ids come from indb's sequences.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA indb TO {developer};

-- name: developer_registers
-- Registering a model adds a models row (and may edit its description)...
GRANT INSERT, UPDATE (description) ON indb.models TO {developer};

-- name: developer_registers_versions
-- ...and a model_versions row, never changing one (tags and descriptions may be edited).
GRANT INSERT, UPDATE (tags, description) ON indb.model_versions TO {developer};

-- name: developer_aliases
-- Developers move aliases; row-level security keeps production for approvers.
GRANT INSERT, UPDATE, DELETE ON indb.model_aliases TO {developer};

-- name: developer_audits
-- Every change made through indb writes an audit row (the chain trigger sets actor and hashes).
GRANT INSERT ON indb.audit_log TO {developer};

-- name: developer_writes
-- Feature-store definitions, monitor results and training runs and retraining policies
-- (whichever of these tables exist) are developers' work. Not indb.monitors / indb.monitor_statements / indb.alert_sinks: they hold
-- SQL text and commands that indb.run_monitor runs as its caller (pg_cron's superuser
-- included), so only the admin role, trusted like the superuser, writes them.
DO $indb$
DECLARE
    t text;
    developer text := indb.role_name('developer');
BEGIN
    FOREACH t IN ARRAY ARRAY['entities', 'feature_sets', 'features', 'training_sets',
                             'training_set_features', 'model_training_sets', 'model_lineage',
                             'feature_statistics', 'monitor_results', 'alerts',
                             'training_runs', 'training_run_metrics', 'retraining_policies'] LOOP
        IF pg_catalog.to_regclass('indb.' || quote_ident(t)) IS NOT NULL THEN
            EXECUTE format('GRANT INSERT, UPDATE, DELETE ON indb.%I TO %I', t, developer);
        END IF;
    END LOOP;
    -- Running a monitor (CALL indb.run_monitor, as its caller) records when it ran and which
    -- alert each sink saw last: those columns only, never the stored SQL or commands.
    IF pg_catalog.to_regclass('indb.monitors') IS NOT NULL THEN
        EXECUTE format('GRANT UPDATE (last_run_at, last_window) ON indb.monitors TO %I', developer);
    END IF;
    IF pg_catalog.to_regclass('indb.alert_sinks') IS NOT NULL THEN
        EXECUTE format('GRANT UPDATE (last_alert_id) ON indb.alert_sinks TO %I', developer);
    END IF;
END
$indb$;

-- name: admin_writes
-- Admins write every catalog table but the audit log (append-only), the migrations record and
-- the role names (the superuser's choice at install: grants follow them).
DO $indb$
DECLARE
    t text;
    admin text := indb.role_name('admin');
BEGIN
    FOR t IN SELECT c.relname FROM pg_catalog.pg_class AS c
             WHERE c.relnamespace = 'indb'::regnamespace AND c.relkind IN ('r', 'p')
               AND c.relname NOT IN ('audit_log', 'schema_migrations', 'roles') LOOP
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON indb.%I TO %I', t, admin);
    END LOOP;
END
$indb$;

-- name: audit_log_no_changes
-- Nobody but the owner may change or remove audit rows (and its trigger refuses the owner too).
REVOKE UPDATE, DELETE, TRUNCATE ON indb.audit_log FROM {reader}, {app}, {developer}, {approver}, {admin};

-- name: aliases_row_security
ALTER TABLE indb.model_aliases ENABLE ROW LEVEL SECURITY;

-- name: aliases_policies
DO $indb$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'indb'
                   AND tablename = 'model_aliases' AND policyname = 'indb_read') THEN
        -- Whoever may SELECT the table sees every alias (a role given SELECT directly, not
        -- through the reader role, must not silently see none and take the wrong default version).
        CREATE POLICY indb_read ON indb.model_aliases FOR SELECT USING (true);
        -- Developers set any alias but production.
        CREATE POLICY indb_stage ON indb.model_aliases FOR ALL TO {developer}
            USING (alias <> 'production') WITH CHECK (alias <> 'production');
        -- Approvers set production.
        CREATE POLICY indb_approve ON indb.model_aliases FOR ALL TO {approver}
            USING (true) WITH CHECK (true);
    END IF;
END
$indb$;

-- name: create_grant_function
-- Who may call one function of schema indb (run on every function, and by the event trigger
-- below on each new one): model functions and what their SQL bodies call are for readers and
-- applications (explain_<model>: a row's contributions, indb.explanations); the rest (trigger
-- functions, the runtime loader, backfill) for nobody but the owner. Model functions are SECURITY DEFINER: they read indb.model_versions as the owner.
CREATE OR REPLACE FUNCTION indb.grant_function(f regprocedure) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    p record;
BEGIN
    SELECT proname, prokind, prorettype INTO p FROM pg_catalog.pg_proc
    WHERE oid = f AND pronamespace = 'indb'::regnamespace;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f);
    IF p.prokind = 'p' AND p.proname = 'run_monitor' THEN
        -- developers run monitors (created with a database's first monitor, after install)
        EXECUTE format('GRANT EXECUTE ON PROCEDURE %s TO %I', f, indb.role_name('developer'));
        RETURN;
    END IF;
    IF p.prorettype = 'pg_catalog.trigger'::regtype OR p.prokind <> 'f' THEN
        RETURN;
    END IF;
    IF p.proname LIKE 'predict\_%' OR p.proname LIKE 'compiled\_%' OR p.proname LIKE 'transform\_%'
       OR p.proname LIKE 'explain\_%' OR p.proname IN ('fail', 'runtime_versions') THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I, %I', f, indb.role_name('reader'), indb.role_name('app'));
    ELSIF p.proname = 'install_model_functions' THEN
        -- developers register models: this creates their predict functions from the catalog row
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, indb.role_name('developer'));
    ELSIF p.proname LIKE 'indb\_%' OR p.proname = 'audit_row_hash' THEN
        -- monitoring's statistics (indb_ks_pvalue, ...) and the audit hash, for readers
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, indb.role_name('reader'));
    END IF;
END
$indb$;

-- name: monitor_procedure
-- Developers run monitors (pg_cron runs them as the job's owner).
DO $indb$
BEGIN
    IF pg_catalog.to_regprocedure('indb.run_monitor(text, timestamp, bigint)') IS NOT NULL THEN
        GRANT EXECUTE ON PROCEDURE indb.run_monitor(text, timestamp, bigint) TO {developer};
    END IF;
END
$indb$;

-- name: create_new_function_hook
-- Functions created later (each deploy and registration creates some) get the same grants.
CREATE OR REPLACE FUNCTION indb.on_create_function() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands()
             WHERE schema_name = 'indb' AND object_type IN ('function', 'procedure') LOOP
        PERFORM indb.grant_function(c.objid::regprocedure);
    END LOOP;
END
$indb$;

-- name: create_new_function_trigger
DO $indb$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'indb_function_grants') THEN
        CREATE EVENT TRIGGER indb_function_grants ON ddl_command_end
            WHEN TAG IN ('CREATE FUNCTION', 'CREATE PROCEDURE')
            EXECUTE FUNCTION indb.on_create_function();
    END IF;
END
$indb$;

-- name: grant_every_function
-- Every function there now (the two above included) gets its grants.
SELECT indb.grant_function(p.oid::regprocedure) FROM pg_catalog.pg_proc AS p
WHERE p.pronamespace = 'indb'::regnamespace;

-- name: create_deployment_grants
-- What a deployment's tables give each role (run at every deploy): applications insert
-- requests and read them back (INSERT ... RETURNING needs SELECT), read predictions and
-- record ground truth; readers see predictions, ground truth and the scored view.
-- Applications insert the request columns only: not the values the server gives (id and
-- created_at when they have a default, as indb's own do; a row-mode table's prediction
-- columns and scored_at), so PostgreSQL refuses theirs (README, "Request tables"). A
-- column privilege costs nothing per row, unlike a BEFORE row trigger overwriting them; an
-- identity column GENERATED ALWAYS would not do (OVERRIDING SYSTEM VALUE needs only INSERT).
CREATE OR REPLACE FUNCTION indb.grant_deployment(schema_name text, table_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    t text;
    request_columns text;
    row_mode boolean;
    reader text := indb.role_name('reader');
    app text := indb.role_name('app');
BEGIN
    SELECT coalesce(bool_or(d.mode = 'row'), false) INTO row_mode
    FROM indb.deployments AS d WHERE d.table_name = grant_deployment.table_name;
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO request_columns
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = format('%I.%I', schema_name, table_name)::regclass
      AND a.attnum > 0 AND NOT a.attisdropped
      AND NOT (a.attname IN ('id', 'created_at') AND (a.atthasdef OR a.attidentity <> ''))
      AND NOT (row_mode AND (a.attname IN ('model', 'model_version', 'runtime', 'prediction', 'scored_at')
                             OR left(a.attname, 12) = 'probability_'));
    -- a table-level grant (older indb) would cover every column: replaced by the column list
    EXECUTE format('REVOKE INSERT ON %I.%I FROM %I', schema_name, table_name, app);
    EXECUTE format('GRANT INSERT (%s) ON %I.%I TO %I', request_columns, schema_name, table_name, app);
    EXECUTE format('GRANT SELECT ON %I.%I TO %I', schema_name, table_name, app);
    IF pg_catalog.to_regclass(format('%I.%I', schema_name, table_name || '_id_seq')) IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SEQUENCE %I.%I TO %I', schema_name, table_name || '_id_seq', app);
    END IF;
    IF pg_catalog.to_regclass(format('%I.%I', schema_name, table_name || '_ground_truth')) IS NOT NULL THEN
        EXECUTE format('GRANT INSERT ON %I.%I TO %I', schema_name, table_name || '_ground_truth', app);
    END IF;
    FOREACH t IN ARRAY ARRAY[table_name, table_name || '_predictions', table_name || '_ground_truth',
                             table_name || '_scored', table_name || '_explanations'] LOOP
        IF pg_catalog.to_regclass(format('%I.%I', schema_name, t)) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %I.%I TO %I, %I', schema_name, t, reader, app);
        END IF;
    END LOOP;
END
$indb$;

-- name: grant_deployment
SELECT indb.grant_deployment({schema}, {table});

-- name: record_deployment
-- Which schema a deployment's table lives in and which content it deployed: the trigger
-- functions check both.
UPDATE indb.deployments SET schema_name = {schema}, content_hash = {content_hash}
WHERE table_name = {table};

-- name: backfill_content_hashes
-- Versions registered before content hashes (indb.registry.content_hash, in SQL): only rows
-- whose bytes still match their sha256; then the deployments of those versions.
UPDATE indb.model_versions AS v SET content_hash = encode(sha256(
    convert_to('indb content v1', 'UTF8')
    || int8send(octet_length(convert_to(v.sha256, 'UTF8'))::int8) || convert_to(v.sha256, 'UTF8')
    || int8send(octet_length(convert_to(v.inputs::text, 'UTF8'))::int8) || convert_to(v.inputs::text, 'UTF8')
    || int8send(octet_length(convert_to(v.outputs::text, 'UTF8'))::int8) || convert_to(v.outputs::text, 'UTF8')
    || int8send(octet_length(convert_to(coalesce(v.classes::text, ''), 'UTF8'))::int8)
    || convert_to(coalesce(v.classes::text, ''), 'UTF8')
    || int8send(octet_length(convert_to(v.recipe::text, 'UTF8'))::int8) || convert_to(v.recipe::text, 'UTF8')
), 'hex')
WHERE v.content_hash IS NULL AND encode(sha256(v.onnx), 'hex') = v.sha256;

-- name: backfill_deployment_hashes
UPDATE indb.deployments AS d SET content_hash = v.content_hash
FROM indb.model_versions AS v
WHERE d.content_hash IS NULL AND v.model = d.model AND v.version = d.version;

-- name: backfill_deployment_schemas
-- Deployments made before schemas were recorded: the schema of the table their trigger is on.
UPDATE indb.deployments AS d SET schema_name = n.nspname
FROM pg_catalog.pg_trigger AS t
JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE d.schema_name IS NULL AND c.relname = d.table_name AND t.tgname = d.table_name || '_score';

-- name: comment_schema
COMMENT ON SCHEMA indb IS {comment};

-- name: catalog_access
-- What a role that may not install indb can use of it (indb.connect checks before reading);
-- by oid, as naming indb.<table> without USAGE on the schema is itself an error. A role that
-- owns schema indb, or may create it in a database without one, installs (managed servers).
SELECT (n.oid IS NULL AND has_database_privilege(current_database(), 'CREATE'))
           OR coalesce(pg_has_role(n.nspowner, 'USAGE'), false) AS installs,
       n.oid IS NOT NULL AS has_schema,
       coalesce(has_schema_privilege(n.oid, 'USAGE'), false) AS usage,
       coalesce(has_table_privilege(v.oid, 'SELECT'), false) AS read_models,
       coalesce(has_table_privilege(m.oid, 'SELECT'), false) AS read_version
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = 'indb'
LEFT JOIN pg_catalog.pg_class AS v ON v.relnamespace = n.oid AND v.relname = 'model_versions'
LEFT JOIN pg_catalog.pg_class AS m ON m.relnamespace = n.oid AND m.relname = 'schema_migrations';

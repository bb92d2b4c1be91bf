-- PostgreSQL: the audit log is append-only and hash-chained, and direct changes of the catalog
-- tables that decide what scores (models, model_versions, model_aliases, deployments) are
-- logged by triggers, whoever makes them. Run in file order by the PostgreSQL backend as the
-- role that installed indb (indb.backends.postgres.PostgresBackend.install_privileges).

-- name: create_row_hash_function
-- The hash of one audit row: every field length-prefixed (no two rows share an encoding),
-- chained to the row before it. `indb audit verify` recomputes it.
CREATE OR REPLACE FUNCTION indb.audit_row_hash(prev_hash text, id bigint, logged_at timestamp,
                                               actor text, action text, object text, details text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $indb$
SELECT encode(sha256(convert_to(
    'indb audit v1|'
    || length(coalesce(prev_hash, '')) || ':' || coalesce(prev_hash, '') || '|'
    || length(id::text) || ':' || id::text || '|'
    || length(to_char(logged_at, 'YYYY-MM-DD"T"HH24:MI:SS.US')) || ':'
    || to_char(logged_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') || '|'
    || length(actor) || ':' || actor || '|'
    || length(action) || ':' || action || '|'
    || length(object) || ':' || object || '|'
    || length(coalesce(details, '')) || ':' || coalesce(details, ''), 'UTF8')), 'hex')
$indb$;

-- name: create_chain_function
-- Before each insert: one writer at a time (a transaction-level advisory lock), the id taken
-- under that lock so ids follow the chain, the actor is the database role that logged in
-- (session_user: a client cannot name someone else), the time is the server's.
CREATE OR REPLACE FUNCTION indb.audit_chain() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
BEGIN
    IF TG_TABLE_SCHEMA <> 'indb' OR TG_TABLE_NAME <> 'audit_log' THEN
        RAISE EXCEPTION 'IntegrityError: indb.audit_chain() fired on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME;
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(7306403451296628);
    NEW.id := pg_catalog.nextval('indb.audit_log_id');
    NEW.logged_at := LOCALTIMESTAMP;
    NEW.actor := session_user;
    SELECT a.row_hash INTO NEW.prev_hash FROM indb.audit_log AS a ORDER BY a.id DESC LIMIT 1;
    NEW.row_hash := indb.audit_row_hash(NEW.prev_hash, NEW.id, NEW.logged_at, NEW.actor,
                                        NEW.action, NEW.object, NEW.details::text);
    RETURN NEW;
END
$indb$;

-- name: create_refuse_function
CREATE OR REPLACE FUNCTION indb.audit_refuse() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    RAISE EXCEPTION 'IntegrityError: indb.audit_log is append-only; % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$indb$;

-- name: create_catalog_change_function
-- After a row of a catalog table changes: one audit row with the old and new values (for
-- model_versions only the keys and hashes, with the sha256 of the bytes as they now are).
CREATE OR REPLACE FUNCTION indb.audit_catalog_change() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
DECLARE
    old_row jsonb;
    new_row jsonb;
    keys text[] := ARRAY['onnx', 'sample'];
    object text;
BEGIN
    IF TG_TABLE_SCHEMA <> 'indb'
       OR TG_TABLE_NAME NOT IN ('models', 'model_versions', 'model_aliases', 'deployments') THEN
        RAISE EXCEPTION 'IntegrityError: indb.audit_catalog_change() fired on %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_row := to_jsonb(NEW);
    END IF;
    IF TG_TABLE_NAME = 'model_versions' THEN
        IF old_row IS NOT NULL THEN
            old_row := jsonb_build_object('model', OLD.model, 'version', OLD.version, 'sha256', OLD.sha256,
                'content_hash', old_row->'content_hash', 'onnx_sha256', encode(sha256(OLD.onnx), 'hex'));
        END IF;
        IF new_row IS NOT NULL THEN
            new_row := jsonb_build_object('model', NEW.model, 'version', NEW.version, 'sha256', NEW.sha256,
                'content_hash', new_row->'content_hash', 'onnx_sha256', encode(sha256(NEW.onnx), 'hex'));
        END IF;
    ELSE
        old_row := old_row - keys;
        new_row := new_row - keys;
    END IF;
    IF TG_OP = 'UPDATE' AND old_row = new_row AND TG_TABLE_NAME <> 'model_versions' THEN
        RETURN NULL;
    END IF;
    object := coalesce(new_row, old_row)->>CASE TG_TABLE_NAME
        WHEN 'models' THEN 'name' WHEN 'deployments' THEN 'table_name' ELSE 'model' END;
    IF TG_TABLE_NAME = 'model_versions' THEN
        object := object || ' v' || (coalesce(new_row, old_row)->>'version');
    ELSIF TG_TABLE_NAME = 'model_aliases' THEN
        object := object || ' ' || (coalesce(new_row, old_row)->>'alias');
    END IF;
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, 'catalog ' || lower(TG_OP) || ' ' || TG_TABLE_NAME, object,
            jsonb_build_object('old', old_row, 'new', new_row)::json);
    RETURN NULL;
END
$indb$;

-- name: create_triggers
DO $indb$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgname = 'indb_audit_chain'
                   AND tgrelid = 'indb.audit_log'::regclass) THEN
        CREATE TRIGGER indb_audit_chain BEFORE INSERT ON indb.audit_log
            FOR EACH ROW EXECUTE FUNCTION indb.audit_chain();
        CREATE TRIGGER indb_audit_append_only BEFORE UPDATE OR DELETE ON indb.audit_log
            FOR EACH ROW EXECUTE FUNCTION indb.audit_refuse();
        CREATE TRIGGER indb_audit_no_truncate BEFORE TRUNCATE ON indb.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION indb.audit_refuse();
    END IF;
    FOREACH t IN ARRAY ARRAY['models', 'model_versions', 'model_aliases', 'deployments'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgname = 'indb_audit_change'
                       AND tgrelid = ('indb.' || t)::regclass) THEN
            EXECUTE format('CREATE TRIGGER indb_audit_change AFTER INSERT OR UPDATE OR DELETE ON indb.%I '
                           'FOR EACH ROW EXECUTE FUNCTION indb.audit_catalog_change()', t);
        END IF;
    END LOOP;
END
$indb$;

-- name: create_ddl_function
-- DDL on indb's own objects and on deployed tables (ALTER TABLE .. DISABLE TRIGGER, DROP
-- TRIGGER, ...) is logged as well, whoever runs it (SECURITY DEFINER: the DDL's author needs
-- no privilege on the audit log). COMMENT is not.
CREATE OR REPLACE FUNCTION indb.audit_ddl() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
DECLARE
    c record;
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        FOR c IN SELECT o.object_type, o.schema_name, o.object_identity FROM pg_catalog.pg_event_trigger_dropped_objects() AS o
                 WHERE o.schema_name IS NOT NULL AND NOT o.is_temporary LOOP
            PERFORM indb.audit_ddl_object(TG_TAG, c.object_type, c.schema_name, c.object_identity);
        END LOOP;
    ELSE
        FOR c IN SELECT d.object_type, d.schema_name, d.object_identity FROM pg_catalog.pg_event_trigger_ddl_commands() AS d
                 WHERE d.schema_name IS NOT NULL AND NOT d.in_extension AND d.command_tag <> 'COMMENT' LOOP
            PERFORM indb.audit_ddl_object(TG_TAG, c.object_type, c.schema_name, c.object_identity);
        END LOOP;
    END IF;
END
$indb$;

-- name: create_ddl_object_function
CREATE OR REPLACE FUNCTION indb.audit_ddl_object(tag text, object_type text, schema_name text, identity text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    IF schema_name = 'indb' OR EXISTS (
        SELECT 1 FROM indb.deployments AS d
        WHERE d.schema_name = audit_ddl_object.schema_name
          AND (identity = quote_ident(d.schema_name) || '.' || quote_ident(d.table_name)
               OR identity LIKE '% on ' || quote_ident(d.schema_name) || '.' || quote_ident(d.table_name))) THEN
        INSERT INTO indb.audit_log (actor, action, object, details)
        VALUES (session_user, 'ddl ' || lower(tag), identity,
                json_build_object('object_type', object_type, 'schema', schema_name));
    END IF;
END
$indb$;

-- name: create_ddl_triggers
DO $indb$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'indb_audit_ddl') THEN
        CREATE EVENT TRIGGER indb_audit_ddl ON ddl_command_end EXECUTE FUNCTION indb.audit_ddl();
        CREATE EVENT TRIGGER indb_audit_drop ON sql_drop EXECUTE FUNCTION indb.audit_ddl();
    END IF;
END
$indb$;

-- name: verify_chain
-- Every audit row with what its hashes should be; rows from before the chain (no row_hash,
-- logged before indb 0.2) come first and are reported as unchained by `indb audit verify`.
SELECT id, prev_hash, row_hash,
       indb.audit_row_hash(prev_hash, id, logged_at, actor, action, object, details::text) AS computed,
       lag(row_hash) OVER (ORDER BY id) AS previous
FROM indb.audit_log ORDER BY id;

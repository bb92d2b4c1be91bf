-- Jobs inside PostgreSQL: a DBA schedules, runs and watches them from psql, no client needed.
--
--   SELECT indb.schedule('drift', '*/15 * * * *', 'run_monitor', '{"monitor": "loans"}');
--   CALL indb.run_job('drift');                      -- by hand
--   SELECT * FROM indb.job_status;                   -- last run, failures in a row
--
-- indb.schedule writes the indb.jobs row and its pg_cron entry (named 'indb.<job>', run as the
-- superuser who installed indb) whose command is CALL indb.run_job('<job>', 'pg_cron').
-- indb.run_job is a procedure without SECURITY DEFINER or SET clauses, because only such a
-- procedure may COMMIT (the 'running' row must be visible while the action runs, retain
-- commits between batches); what needs the owner's rights is done by the small SECURITY
-- DEFINER functions below, each checking it is called for a run of this session. Timeouts:
-- statement_timeout is armed once per top-level statement and cannot be set for the rest of a
-- running CALL, and pg_cron runs a single statement, so a job's timeout is enforced by
-- indb.run_due_jobs (pg_cron 'indb.tick', every minute), which cancels runs past their
-- timeout; a DBA running a job by hand may also SET statement_timeout before the CALL. Either
-- cancel is recorded as timed_out. The same tick runs jobs waiting on an alert.
--
-- Decisions: without pg_cron in this database a job is created all the same, with a WARNING:
-- it runs when called, and indb.enable_job gives it its pg_cron entry once pg_cron is there
-- (indb demo works on any database that way). A name that exists is an error (unschedule,
-- then schedule again); schedules run in UTC (pg_cron 1.4 has no time zones: other zones are
-- refused); pg_cron does not make up runs missed while the server was down, whatever catch_up
-- says (it is stored for other runners); next_run comes from croniter in the server's Python when PL/Python has it, else
-- stays NULL; a sql job's statement runs with its owner's privileges (SET ROLE), which guards
-- against mistakes, not against an admin (trusted like the superuser: a DO block can RESET
-- ROLE). Actions written in Python (ingest, refresh_feature_set, rebuild_training_set,
-- materialize_latest, and any registered later) run in the server's PL/Python as the job's
-- owner too (sql/postgres/server_python.sql); without PL/Python they are refused at schedule.
-- retain follows engine/jobs/actions/retain.py's rules (indb.job_retain_plan).
--
-- Statements here are installed as they are (no {slots}) but the grants, rendered with the
-- role names of PostgresBackend.role_slots().

-- name: create_cron_expression
-- A schedule as pg_cron takes it: 5-field cron and @macros as they are (pg_cron's parser
-- checks them), intervals 'N minutes|hours|days' as the cron expression they equal when
-- anchored at the epoch (minutes dividing 60, hours dividing 24, one day); NULL for an
-- interval that no cron expression equals.
CREATE OR REPLACE FUNCTION indb.job_cron_expression(job_schedule text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    m text[];
    n bigint;
    unit text;
BEGIN
    m := pg_catalog.regexp_match(pg_catalog.lower(pg_catalog.btrim(job_schedule)),
                                 '^(\d{1,6})\s*(minutes?|mins?|hours?|days?)$');
    IF m IS NULL THEN
        RETURN pg_catalog.btrim(job_schedule);
    END IF;
    n := m[1]::bigint;
    unit := pg_catalog.left(m[2], 1);
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    IF unit = 'm' AND n % 60 = 0 THEN
        n := n / 60;
        unit := 'h';
    END IF;
    IF unit = 'h' AND n = 24 THEN
        n := 1;
        unit := 'd';
    END IF;
    IF unit = 'm' THEN
        RETURN CASE WHEN n = 1 THEN '* * * * *' WHEN 60 % n = 0 THEN pg_catalog.format('*/%s * * * *', n) END;
    ELSIF unit = 'h' THEN
        RETURN CASE WHEN n = 1 THEN '0 * * * *' WHEN 24 % n = 0 THEN pg_catalog.format('0 */%s * * *', n) END;
    END IF;
    RETURN CASE WHEN n = 1 THEN '0 0 * * *' END;
END
$indb$;

-- name: create_statement_count
-- How many statements a sql job's text holds: semicolons outside quotes, quoted identifiers,
-- comments and dollar-quoted bodies, a trailing one not counted (EXECUTE would run them all).
CREATE OR REPLACE FUNCTION indb.job_statements(sql_text text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    rest text := sql_text;
    m text[];
    closing text;
    at integer;
    found integer := 1;
BEGIN
    LOOP
        m := pg_catalog.regexp_match(rest, $re$('|"|--|/\*|\$[A-Za-z_]?[A-Za-z_0-9]*\$|;)$re$);
        EXIT WHEN m IS NULL;
        rest := pg_catalog.substr(rest, pg_catalog.strpos(rest, m[1]) + pg_catalog.length(m[1]));
        IF m[1] = ';' THEN
            EXIT WHEN pg_catalog.btrim(rest, E' \t\r\n;') = '';
            found := found + 1;
            CONTINUE;
        END IF;
        closing := CASE m[1] WHEN '--' THEN E'\n' WHEN '/*' THEN '*/' ELSE m[1] END;
        at := pg_catalog.strpos(rest, closing);
        EXIT WHEN at = 0;
        rest := pg_catalog.substr(rest, at + pg_catalog.length(closing));
    END LOOP;
    RETURN found;
END
$indb$;

-- name: create_next_run_python
-- The next time (UTC) a schedule is due after `after`, by croniter in the server's Python
-- (.ci/install_postgres.sh installs it); NULL when croniter is not there.
CREATE OR REPLACE FUNCTION indb.job_next_run(cron_text text, after timestamp) RETURNS timestamp
LANGUAGE plpython3u STABLE SET search_path = pg_catalog, pg_temp AS $indb$
import datetime
try:
    from croniter import croniter
except ImportError:
    return None
if cron_text is None or after is None:
    return None
start = datetime.datetime.fromisoformat(after)
return croniter(cron_text, start).get_next(datetime.datetime).isoformat(sep=" ")
$indb$;

-- name: create_next_run_null
-- Without PL/Python: next_run stays NULL (pg_cron still runs the job on time).
CREATE OR REPLACE FUNCTION indb.job_next_run(cron_text text, after timestamp) RETURNS timestamp
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $indb$ SELECT NULL::timestamp $indb$;

-- name: create_schedule_function
-- Creates a job and its pg_cron entry; checks the name, schedule, action, arguments and
-- options first and creates nothing when one is wrong. The job's owner is the caller's
-- session_user: a sql job runs its statement as that role.
CREATE OR REPLACE FUNCTION indb.schedule(job_name text, schedule text, action text,
                                         arguments jsonb DEFAULT '{}', options jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    -- a key given as null is a key not given (clients send unset options as null)
    spec jsonb := pg_catalog.jsonb_strip_nulls(coalesce(arguments, '{}'::jsonb));
    opts jsonb := pg_catalog.jsonb_strip_nulls(coalesce(options, '{}'::jsonb));
    required text[];
    allowed text[];
    k text;
    cron_text text;
    cron_id bigint;
    zone text := 'UTC';
    on_alert jsonb;
    needs_tick boolean;
BEGIN
    IF job_name IS NULL OR job_name !~ '^[a-z_][a-z0-9_]*$' OR pg_catalog.length(job_name) > 58 THEN
        RAISE EXCEPTION 'JobError: job name % is not a plain identifier: expected lowercase letters, digits and underscores, starting with a letter or underscore, at most 58 characters',
            coalesce(pg_catalog.quote_literal(job_name), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM indb.jobs AS j WHERE j.name = job_name) THEN
        RAISE EXCEPTION 'JobError: job % already exists: SELECT indb.unschedule(%) first (or indb.enable_job to pause it)',
            job_name, pg_catalog.quote_literal(job_name) USING ERRCODE = 'duplicate_object';
    END IF;
    IF pg_catalog.jsonb_typeof(spec) <> 'object' OR pg_catalog.jsonb_typeof(opts) <> 'object' THEN
        RAISE EXCEPTION 'JobError: job %: arguments and options are JSON objects, e.g. ''{"monitor": "loans"}''', job_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the server-side actions and their argument keys (engine/jobs/actions/__init__.py)
    CASE action
        WHEN 'run_monitor' THEN required := ARRAY['monitor']; allowed := ARRAY['monitor'];
        WHEN 'retain' THEN
            required := ARRAY['days'];
            allowed := ARRAY['days', 'deployment', 'tables', 'job_runs', 'batch_size', 'archive'];
        WHEN 'sql' THEN required := ARRAY['statement']; allowed := ARRAY['statement'];
        ELSE
            -- a Python action (engine/jobs/actions/), run in the server by PL/Python: its
            -- registry checks the name and the argument keys (or says what to install)
            spec := indb.check_python_action(action, spec);
            required := '{}';
            allowed := ARRAY(SELECT pg_catalog.jsonb_object_keys(spec));
    END CASE;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(spec) LOOP
        IF NOT k = ANY (allowed) THEN
            RAISE EXCEPTION 'JobError: action % has no argument % (it takes: %)', action,
                pg_catalog.quote_literal(k), pg_catalog.array_to_string(allowed, ', ') USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    FOREACH k IN ARRAY required LOOP
        IF spec -> k IS NULL OR pg_catalog.jsonb_typeof(spec -> k) = 'null' THEN
            RAISE EXCEPTION 'JobError: action % needs the argument %', action, pg_catalog.quote_literal(k)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF action = 'run_monitor' THEN
        IF pg_catalog.jsonb_typeof(spec -> 'monitor') <> 'string'
           OR NOT EXISTS (SELECT 1 FROM indb.monitors AS m WHERE m.name = spec ->> 'monitor') THEN
            RAISE EXCEPTION 'JobError: job %: monitor % does not exist (SELECT name FROM indb.monitors)',
                job_name, spec -> 'monitor' USING ERRCODE = 'undefined_object';
        END IF;
    ELSIF action = 'sql' THEN
        IF pg_catalog.jsonb_typeof(spec -> 'statement') <> 'string' OR pg_catalog.btrim(spec ->> 'statement') = '' THEN
            RAISE EXCEPTION 'JobError: job %: statement must be one SQL statement as a string', job_name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF indb.job_statements(spec ->> 'statement') > 1 THEN
            RAISE EXCEPTION 'JobError: job %: statement holds % statements; a sql job runs one (schedule one job per statement)',
                job_name, indb.job_statements(spec ->> 'statement') USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSIF action = 'retain' THEN
        IF pg_catalog.jsonb_typeof(spec -> 'days') <> 'number' OR (spec ->> 'days')::numeric < 0 THEN
            RAISE EXCEPTION 'JobError: job %: days must be a number, 0 or more, got %', job_name, spec -> 'days'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (spec ? 'deployment') = (coalesce(spec -> 'job_runs', 'false'::jsonb) = 'true'::jsonb) THEN
            RAISE EXCEPTION 'JobError: job %: retain takes either "deployment" or "job_runs": true', job_name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF spec ? 'deployment' AND NOT EXISTS (SELECT 1 FROM indb.deployments AS d WHERE d.table_name = spec ->> 'deployment') THEN
            RAISE EXCEPTION 'JobError: job %: deployment % does not exist (SELECT table_name FROM indb.deployments)',
                job_name, spec -> 'deployment' USING ERRCODE = 'undefined_object';
        END IF;
        IF spec ? 'tables' AND (pg_catalog.jsonb_typeof(spec -> 'tables') <> 'array'
            OR pg_catalog.jsonb_array_length(spec -> 'tables') = 0
            OR NOT (spec -> 'tables') <@ '["requests", "predictions", "ground_truth"]'::jsonb) THEN
            RAISE EXCEPTION 'JobError: job %: tables must be a list of requests, predictions, ground_truth; got %',
                job_name, spec -> 'tables' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF spec ? 'batch_size' AND (pg_catalog.jsonb_typeof(spec -> 'batch_size') <> 'number'
            OR (spec ->> 'batch_size')::numeric < 1 OR (spec ->> 'batch_size')::numeric % 1 <> 0) THEN
            RAISE EXCEPTION 'JobError: job %: batch_size must be a whole number above 0, got %', job_name, spec -> 'batch_size'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.jsonb_typeof(coalesce(spec -> 'archive', 'false'::jsonb)) <> 'boolean' THEN
            RAISE EXCEPTION 'JobError: job %: archive is true or false, got %', job_name, spec -> 'archive'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF spec ? 'deployment' AND EXISTS (SELECT 1 FROM indb.deployments AS d
                                           WHERE d.table_name = spec ->> 'deployment' AND d.mode <> 'bulk') THEN
            RAISE EXCEPTION 'JobError: job %: deployment % keeps its predictions in its request table (row mode); retain sweeps bulk-mode deployments only',
                job_name, spec -> 'deployment' USING ERRCODE = 'feature_not_supported';
        END IF;
    END IF;
    -- options (the same keys as db.schedule's)
    FOR k IN SELECT pg_catalog.jsonb_object_keys(opts) LOOP
        IF NOT k = ANY (ARRAY['timezone', 'on_alert', 'retries', 'retry_delay', 'timeout',
                              'alert_after_failures', 'catch_up', 'comment', 'enabled']) THEN
            RAISE EXCEPTION 'JobError: job %: unknown option % (options: timezone, on_alert, retries, retry_delay, timeout, alert_after_failures, catch_up, comment, enabled)',
                job_name, pg_catalog.quote_literal(k) USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    FOREACH k IN ARRAY ARRAY['retries', 'retry_delay', 'timeout', 'alert_after_failures'] LOOP
        IF opts ? k AND (pg_catalog.jsonb_typeof(opts -> k) <> 'number' OR (opts ->> k)::numeric < 0
            OR (k IN ('retries', 'alert_after_failures') AND (opts ->> k)::numeric % 1 <> 0)
            OR (k IN ('timeout', 'alert_after_failures') AND (opts ->> k)::numeric = 0)) THEN
            RAISE EXCEPTION 'JobError: job %: option % must be a % number, got %', job_name, k,
                CASE WHEN k IN ('retries', 'alert_after_failures') THEN 'whole' ELSE 'non-negative' END
                || CASE WHEN k IN ('timeout', 'alert_after_failures') THEN ' positive' ELSE '' END,
                opts -> k USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF opts ? 'timezone' THEN
        zone := opts ->> 'timezone';
        IF zone IS NULL OR NOT (pg_catalog.upper(zone) IN ('UTC', 'GMT', 'ETC/UTC', 'ETC/GMT', 'Z')
                                OR zone = coalesce(pg_catalog.current_setting('cron.timezone', true), 'UTC')) THEN
            RAISE EXCEPTION 'JobError: job %: timezone % is not supported here: pg_cron % runs schedules in %; give the schedule in UTC',
                job_name, opts -> 'timezone',
                (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pg_cron'),
                coalesce(pg_catalog.current_setting('cron.timezone', true), 'GMT (UTC)')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        zone := CASE WHEN pg_catalog.upper(zone) IN ('GMT', 'ETC/UTC', 'ETC/GMT', 'Z') THEN 'UTC' ELSE zone END;
    END IF;
    IF opts ? 'on_alert' THEN
        on_alert := opts -> 'on_alert';
        IF pg_catalog.jsonb_typeof(on_alert) <> 'object' OR pg_catalog.jsonb_typeof(on_alert -> 'monitor') <> 'string'
           OR NOT on_alert - 'monitor' - 'metric' = '{}'::jsonb
           OR (on_alert ? 'metric' AND pg_catalog.jsonb_typeof(on_alert -> 'metric') <> 'string') THEN
            RAISE EXCEPTION 'JobError: job %: on_alert is {"monitor": "<name>"} with an optional "metric", got %', job_name, on_alert
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM indb.monitors AS m WHERE m.name = on_alert ->> 'monitor') THEN
            RAISE EXCEPTION 'JobError: job %: on_alert names monitor %, which does not exist', job_name, on_alert -> 'monitor'
                USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    IF opts ? 'catch_up' AND NOT coalesce(opts ->> 'catch_up' IN ('latest', 'all', 'none'), false) THEN
        RAISE EXCEPTION 'JobError: job %: catch_up is latest, all or none, got %', job_name, opts -> 'catch_up'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF opts ? 'enabled' AND pg_catalog.jsonb_typeof(opts -> 'enabled') <> 'boolean' THEN
        RAISE EXCEPTION 'JobError: job %: enabled is true or false, got %', job_name, opts -> 'enabled'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF schedule IS NULL AND on_alert IS NULL THEN
        RAISE EXCEPTION 'JobError: job % needs a schedule or an on_alert option', job_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF schedule IS NOT NULL THEN
        cron_text := indb.job_cron_expression(schedule);
        IF cron_text IS NULL THEN
            RAISE EXCEPTION 'JobError: job %: schedule % is an interval pg_cron cannot run: use minutes dividing 60, hours dividing 24, or 1 day (or a cron expression)',
                job_name, pg_catalog.quote_literal(schedule) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT (cron_text IN ('@hourly', '@daily', '@weekly', '@monthly', '@yearly')
                OR pg_catalog.array_length(pg_catalog.regexp_split_to_array(cron_text, '\s+'), 1) = 5) THEN
            RAISE EXCEPTION 'JobError: job %: schedule % is not a 5-field cron expression, @hourly, @daily, @weekly, @monthly, @yearly or an interval such as ''15 minutes''',
                job_name, pg_catalog.quote_literal(schedule) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.to_regnamespace('cron') IS NULL THEN
            -- no pg_cron to check it: croniter does (when PL/Python has it)
            BEGIN
                PERFORM indb.job_next_run(cron_text, pg_catalog.timezone('UTC', pg_catalog.now()));
            EXCEPTION WHEN OTHERS THEN
                RAISE EXCEPTION 'JobError: job %: schedule % is not a valid cron expression (%); expected 5 fields (minute hour day-of-month month day-of-week), @hourly, @daily, @weekly, @monthly, @yearly or an interval such as ''15 minutes''',
                    job_name, pg_catalog.quote_literal(schedule), pg_catalog.split_part(SQLERRM, E'\n', 1)
                    USING ERRCODE = 'invalid_parameter_value';
            END;
        END IF;
    END IF;
    INSERT INTO indb.jobs (name, schedule, timezone, action, arguments, enabled, on_alert, retries,
                           retry_delay_seconds, timeout_seconds, alert_after_failures, catch_up, owner, comment)
    VALUES (job_name, schedule, zone, action, spec::json, coalesce((opts ->> 'enabled')::boolean, true), on_alert::json,
            coalesce((opts ->> 'retries')::integer, 0), coalesce((opts ->> 'retry_delay')::double precision, 60),
            (opts ->> 'timeout')::double precision, coalesce((opts ->> 'alert_after_failures')::integer, 3),
            coalesce(opts ->> 'catch_up', 'latest'), session_user, opts ->> 'comment');
    IF schedule IS NOT NULL AND pg_catalog.to_regnamespace('cron') IS NULL THEN
        -- created all the same: it runs when called, and indb.enable_job schedules it later
        RAISE WARNING 'job %: pg_cron is not installed in database %, so the job runs only when called: CALL indb.run_job(%); to run it on its schedule, as a superuser: CREATE EXTENSION pg_cron; (postgresql.conf: shared_preload_libraries = ''pg_cron'', cron.database_name = %), then SELECT indb.enable_job(%);',
            job_name, pg_catalog.current_database(), pg_catalog.quote_literal(job_name),
            pg_catalog.quote_literal(pg_catalog.current_database()), pg_catalog.quote_literal(job_name);
    ELSIF schedule IS NOT NULL THEN
        cron_id := indb.job_cron_schedule(job_name, cron_text, schedule);
        IF NOT coalesce((opts ->> 'enabled')::boolean, true) THEN
            PERFORM indb.job_cron_active(cron_id, false);
        END IF;
    END IF;
    IF schedule IS NOT NULL THEN
        UPDATE indb.jobs SET cron_job_id = cron_id,
            next_run = CASE WHEN enabled THEN indb.job_next_run(cron_text, pg_catalog.timezone('UTC', pg_catalog.now())) END
        WHERE name = job_name;
    END IF;
    needs_tick := on_alert IS NOT NULL OR opts ? 'timeout';
    IF needs_tick AND pg_catalog.to_regnamespace('cron') IS NOT NULL THEN
        PERFORM indb.job_cron_tick();
    ELSIF needs_tick THEN
        RAISE NOTICE 'job %: without pg_cron, jobs on an alert and timeouts need CALL indb.run_due_jobs() run regularly', job_name;
    END IF;
    RETURN job_name;
END
$indb$;

-- name: create_cron_functions
-- pg_cron's calls, kept apart so that indb.schedule and the others stay plain PL/pgSQL when
-- pg_cron is not installed (a reference to cron.* is resolved only when it runs).
CREATE OR REPLACE FUNCTION indb.job_cron_schedule(job_name text, cron_text text, given text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    cron_name text := 'indb.' || job_name;
BEGIN
    IF EXISTS (SELECT 1 FROM cron.job AS c WHERE c.jobname = cron_name) THEN
        RAISE EXCEPTION 'JobError: pg_cron already has a job named % that indb does not know: SELECT cron.unschedule(%); if it is stale',
            pg_catalog.quote_literal(cron_name), pg_catalog.quote_literal(cron_name) USING ERRCODE = 'duplicate_object';
    END IF;
    BEGIN
        RETURN cron.schedule(cron_name, cron_text,
                             pg_catalog.format('CALL indb.run_job(%L, %L)', job_name, 'pg_cron'));
    EXCEPTION WHEN OTHERS THEN
        IF SQLERRM LIKE 'invalid schedule%' THEN
            RAISE EXCEPTION 'JobError: job %: schedule % is not a valid cron expression (pg_cron: %); expected 5 fields (minute hour day-of-month month day-of-week), @hourly, @daily, @weekly, @monthly, @yearly or an interval such as ''15 minutes''',
                job_name, pg_catalog.quote_literal(given), SQLERRM USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE;
    END;
END
$indb$;

-- name: create_cron_active_function
CREATE OR REPLACE FUNCTION indb.job_cron_active(cron_id bigint, active boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    IF EXISTS (SELECT 1 FROM cron.job AS c WHERE c.jobid = cron_id) THEN
        PERFORM cron.alter_job(cron_id, active => job_cron_active.active);
    END IF;
END
$indb$;

-- name: create_cron_exists_function
CREATE OR REPLACE FUNCTION indb.job_cron_exists(cron_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    RETURN cron_id IS NOT NULL AND EXISTS (SELECT 1 FROM cron.job AS c WHERE c.jobid = cron_id);
END
$indb$;

-- name: create_cron_unschedule_function
CREATE OR REPLACE FUNCTION indb.job_cron_unschedule(cron_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    IF EXISTS (SELECT 1 FROM cron.job AS c WHERE c.jobid = cron_id) THEN
        PERFORM cron.unschedule(cron_id);
    END IF;
END
$indb$;

-- name: create_cron_tick_function
-- The per-minute tick (timeouts, jobs on alerts), created with the first job that needs it.
CREATE OR REPLACE FUNCTION indb.job_cron_tick() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM cron.job AS c WHERE c.jobname = 'indb.tick') THEN
        PERFORM cron.schedule('indb.tick', '* * * * *', 'CALL indb.run_due_jobs()');
    END IF;
END
$indb$;

-- name: create_cron_untick_function
CREATE OR REPLACE FUNCTION indb.job_cron_untick() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    IF EXISTS (SELECT 1 FROM cron.job AS c WHERE c.jobname = 'indb.tick') THEN
        PERFORM cron.unschedule('indb.tick');
    END IF;
END
$indb$;

-- name: create_unschedule_function
-- Removes a job and its pg_cron entry; its runs stay in indb.job_runs.
CREATE OR REPLACE FUNCTION indb.unschedule(job_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    cron_id bigint;
BEGIN
    SELECT j.cron_job_id INTO cron_id FROM indb.jobs AS j WHERE j.name = job_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound: job % does not exist (SELECT name FROM indb.jobs)',
            coalesce(pg_catalog.quote_literal(job_name), 'NULL') USING ERRCODE = 'undefined_object';
    END IF;
    IF cron_id IS NOT NULL AND pg_catalog.to_regnamespace('cron') IS NOT NULL THEN
        PERFORM indb.job_cron_unschedule(cron_id);
    END IF;
    DELETE FROM indb.jobs WHERE name = job_name;
    IF pg_catalog.to_regnamespace('cron') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM indb.jobs AS j WHERE j.on_alert IS NOT NULL OR j.timeout_seconds IS NOT NULL) THEN
        PERFORM indb.job_cron_untick();  -- the last job that needed the tick is gone
    END IF;
    RETURN true;
END
$indb$;

-- name: create_enable_function
-- Pauses (false) or resumes a job: indb.jobs.enabled and pg_cron's active flag. Resuming a job
-- without its pg_cron entry (scheduled before pg_cron was installed, or removed behind indb)
-- creates the entry.
CREATE OR REPLACE FUNCTION indb.enable_job(job_name text, enabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    cron_id bigint;
    job_schedule text;
BEGIN
    IF enable_job.enabled IS NULL THEN
        RAISE EXCEPTION 'JobError: enabled is true or false' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT j.cron_job_id, j.schedule INTO cron_id, job_schedule FROM indb.jobs AS j WHERE j.name = job_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound: job % does not exist (SELECT name FROM indb.jobs)',
            coalesce(pg_catalog.quote_literal(job_name), 'NULL') USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE indb.jobs AS j SET enabled = enable_job.enabled, updated_at = pg_catalog.timezone('UTC', pg_catalog.now()),
        next_run = CASE WHEN enable_job.enabled AND j.schedule IS NOT NULL
                        THEN indb.job_next_run(indb.job_cron_expression(j.schedule), pg_catalog.timezone('UTC', pg_catalog.now())) END
    WHERE j.name = job_name;
    IF pg_catalog.to_regnamespace('cron') IS NOT NULL THEN
        IF enable_job.enabled AND job_schedule IS NOT NULL AND NOT indb.job_cron_exists(cron_id) THEN
            -- scheduled before pg_cron was installed here, or its entry was removed behind indb
            cron_id := indb.job_cron_schedule(job_name, indb.job_cron_expression(job_schedule), job_schedule);
            UPDATE indb.jobs SET cron_job_id = cron_id WHERE name = job_name;
        ELSIF cron_id IS NOT NULL THEN
            PERFORM indb.job_cron_active(cron_id, enable_job.enabled);
        END IF;
    END IF;
    RETURN enable_job.enabled;
END
$indb$;

-- name: create_run_begin_function
-- Records the start of a run: a 'running' row (the caller commits it at once), or 'skipped'
-- when another session holds the job's lock. Refuses a sql job or a Python action (both run
-- as the job's owner) to a caller who cannot act as its owner.
CREATE OR REPLACE FUNCTION indb.job_run_begin(job_name text, runner text, reason text, attempt integer,
                                              locked boolean) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    j record;
    new_id bigint;
BEGIN
    SELECT * INTO j FROM indb.jobs AS x WHERE x.name = job_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound: job % does not exist (SELECT name FROM indb.jobs)',
            coalesce(pg_catalog.quote_literal(job_name), 'NULL') USING ERRCODE = 'undefined_object';
    END IF;
    IF j.action NOT IN ('run_monitor', 'retain') AND NOT pg_catalog.pg_has_role(session_user, j.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'JobError: job % runs its % as %: only that role (or a superuser, as pg_cron) may run it',
            job_name, CASE WHEN j.action = 'sql' THEN 'statement' ELSE 'action ' || j.action END,
            pg_catalog.quote_ident(j.owner) USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO indb.job_runs (job, scheduled_for, started_at, finished_at, status, attempt, reason, runner, host, pid)
    VALUES (job_name,
            CASE WHEN runner = 'pg_cron' AND reason = 'schedule'
                 THEN pg_catalog.date_trunc('minute', pg_catalog.timezone('UTC', pg_catalog.now())) END,
            pg_catalog.timezone('UTC', pg_catalog.clock_timestamp()),
            CASE WHEN locked THEN NULL ELSE pg_catalog.timezone('UTC', pg_catalog.clock_timestamp()) END,
            CASE WHEN locked THEN 'running' ELSE 'skipped' END, attempt, reason, runner,
            coalesce(pg_catalog.host(pg_catalog.inet_server_addr()), 'local'), pg_catalog.pg_backend_pid())
    RETURNING id INTO new_id;
    IF NOT locked THEN
        UPDATE indb.job_runs SET error = 'another run of this job was still running' WHERE id = new_id;
    END IF;
    RETURN new_id;
END
$indb$;

-- name: create_run_end_function
-- Records how a run of this session ended; after alert_after_failures failures in a row,
-- opens the job's alert (kind 'job') or updates the open one.
CREATE OR REPLACE FUNCTION indb.job_run_end(run_id bigint, run_status text, run_result jsonb, run_rows bigint,
                                            run_error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    r record;
    j record;
    failures bigint;
    alert_id bigint;
BEGIN
    UPDATE indb.job_runs AS x
    SET status = run_status, finished_at = pg_catalog.timezone('UTC', pg_catalog.clock_timestamp()),
        result = run_result::json, rows_affected = run_rows, error = run_error
    WHERE x.id = run_id AND x.status = 'running' AND x.pid = pg_catalog.pg_backend_pid()
    RETURNING x.* INTO r;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'JobError: run % is not a running run of this session', run_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE indb.jobs AS x
    SET next_run = indb.job_next_run(indb.job_cron_expression(x.schedule), pg_catalog.timezone('UTC', pg_catalog.now()))
    WHERE x.name = r.job AND x.enabled AND x.schedule IS NOT NULL;
    IF run_status NOT IN ('failed', 'timed_out') THEN
        RETURN;
    END IF;
    SELECT * INTO j FROM indb.jobs AS x WHERE x.name = r.job;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT pg_catalog.count(*) INTO failures FROM indb.job_runs AS x
    WHERE x.job = r.job AND x.status IN ('failed', 'timed_out')
      AND x.id > coalesce((SELECT pg_catalog.max(s.id) FROM indb.job_runs AS s
                           WHERE s.job = r.job AND s.status = 'succeeded'), 0);
    IF failures < j.alert_after_failures THEN
        RETURN;
    END IF;
    UPDATE indb.alerts AS a
    SET last_seen = pg_catalog.now(), run_id = r.id, value = failures, threshold = j.alert_after_failures,
        seen_count = a.seen_count + 1, window_end = r.finished_at, last_window_start = r.started_at
    WHERE a.kind = 'job' AND a.monitor = r.job AND a.status IN ('open', 'acknowledged')
    RETURNING a.id INTO alert_id;
    IF alert_id IS NULL THEN
        INSERT INTO indb.alerts (kind, monitor, run_id, window_start, window_end, feature, metric, value, threshold,
                                 status, opened_at, first_seen, last_seen, seen_count, last_window_start)
        VALUES ('job', r.job, r.id, r.started_at, r.finished_at, 'job', 'consecutive_failures', failures,
                j.alert_after_failures, 'open', pg_catalog.now(), pg_catalog.now(), pg_catalog.now(), 1, r.started_at);
    END IF;
END
$indb$;

-- name: create_retain_plan_function
-- What a retain run of this session deletes, as engine/jobs/actions/retain.py decides it (the
-- same rules on every backend): the cutoff is now - days (deployment tables hold local times,
-- as their defaults write them; job runs UTC), moved back to the oldest last_window of the
-- deployment's monitors (for a monitor windowed by a request column: the earliest scored_at /
-- created_at of the rows in its windows from there), then to the start of the monitor window
-- it falls in; a monitor that never ran reads every row, so nothing goes. Kinds in the order
-- they are swept: predictions, ground truth, requests (children first); or job runs, then
-- pg_cron's record of indb's entries. Written into the run's result, where the batches read
-- it: no caller can hand a batch another cutoff. With archive, creates <table>_archive.
CREATE OR REPLACE FUNCTION indb.job_retain_plan(run_id bigint) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning AS $indb$
DECLARE
    r record;
    spec jsonb;
    dep record;
    m record;
    days double precision;
    requested timestamp;
    cutoff timestamp;
    needed timestamp;
    floored timestamp;
    kinds text[];
    kind text;
    chosen boolean;
    notes text[] := '{}';
    never text;
    holder text;
    monitors jsonb := '{}';
    widths bigint[] := '{}';
    w bigint;
    has_created boolean;
    archive boolean;
    plan jsonb;
BEGIN
    SELECT x.job, j.action, j.arguments::jsonb AS arguments INTO r
    FROM indb.job_runs AS x JOIN indb.jobs AS j ON j.name = x.job
    WHERE x.id = run_id AND x.status = 'running' AND x.pid = pg_catalog.pg_backend_pid();
    IF NOT FOUND OR r.action <> 'retain' THEN
        RAISE EXCEPTION 'JobError: run % is not a running retain run of this session', run_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    spec := r.arguments;
    days := (spec ->> 'days')::double precision;
    archive := coalesce(spec -> 'archive', 'false'::jsonb) = 'true'::jsonb;
    IF coalesce(spec -> 'job_runs', 'false'::jsonb) = 'true'::jsonb THEN
        cutoff := pg_catalog.timezone('UTC', pg_catalog.now()) - pg_catalog.make_interval(secs => days * 86400);
        kinds := ARRAY['job_runs'];
        IF pg_catalog.to_regnamespace('cron') IS NOT NULL THEN
            kinds := kinds || 'cron_job_run_details'::text;  -- pg_cron never purges it
        END IF;
        IF archive THEN
            CREATE TABLE IF NOT EXISTS indb.job_runs_archive AS SELECT * FROM indb.job_runs LIMIT 0;
        END IF;
        plan := pg_catalog.jsonb_build_object('job_runs', true, 'tables', pg_catalog.jsonb_build_array('job_runs'),
            'cutoff', cutoff::text, 'requested_cutoff', cutoff::text, 'archive', archive, 'kinds', pg_catalog.to_jsonb(kinds));
    ELSE
        SELECT d.table_name, coalesce(d.schema_name, 'public') AS schema_name, d.mode INTO dep
        FROM indb.deployments AS d WHERE d.table_name = spec ->> 'deployment';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'JobError: job %: deployment % does not exist any more', r.job, spec -> 'deployment'
                USING ERRCODE = 'undefined_object';
        END IF;
        IF dep.mode <> 'bulk' THEN
            RAISE EXCEPTION 'JobError: action ''retain'': deployment % keeps its predictions in its request table (% mode); retain sweeps bulk-mode deployments only',
                pg_catalog.quote_literal(dep.table_name), dep.mode USING ERRCODE = 'feature_not_supported';
        END IF;
        chosen := spec ? 'tables';
        SELECT pg_catalog.array_agg(t.k ORDER BY t.o) INTO kinds
        FROM (VALUES ('predictions', 1), ('ground_truth', 2), ('requests', 3)) AS t(k, o)
        WHERE NOT chosen OR spec -> 'tables' ? t.k;
        has_created := EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                               WHERE a.attrelid = pg_catalog.format('%I.%I', dep.schema_name, dep.table_name)::regclass
                                 AND a.attname = 'created_at' AND NOT a.attisdropped);
        IF 'requests' = ANY (kinds) AND NOT has_created THEN
            IF chosen THEN
                RAISE EXCEPTION 'JobError: action ''retain'': request table % has no created_at time column, so its rows have no age; leave requests out of tables',
                    pg_catalog.quote_literal(dep.table_name) USING ERRCODE = 'undefined_column';
            END IF;
            kinds := pg_catalog.array_remove(kinds, 'requests');
            notes := notes || pg_catalog.format('requests kept: %L has no created_at time column', dep.table_name);
        END IF;
        requested := LOCALTIMESTAMP - pg_catalog.make_interval(secs => days * 86400);
        cutoff := requested;
        FOR m IN SELECT x.name, x.last_window, x.time_column, x.window_seconds FROM indb.monitors AS x
                 WHERE x.deployment = dep.table_name AND x.schema_name = dep.schema_name ORDER BY x.name LOOP
            monitors := monitors || pg_catalog.jsonb_build_object(m.name, m.last_window::text);
            IF m.last_window IS NULL THEN
                never := coalesce(never, m.name);
                CONTINUE;
            END IF;
            IF m.time_column IS NULL THEN
                widths := widths || m.window_seconds;
                needed := m.last_window;
            ELSE
                EXECUTE pg_catalog.format(
                    'SELECT least(min(p.scored_at), min(%s)) FROM %I.%I AS r JOIN %I.%I AS p ON p.id = r.id WHERE CAST(r.%I AS timestamp) >= $1',
                    CASE WHEN has_created THEN 'r.created_at' ELSE 'p.scored_at' END, dep.schema_name, dep.table_name,
                    dep.schema_name, dep.table_name || '_predictions', m.time_column) INTO needed USING m.last_window;
            END IF;
            IF needed IS NOT NULL AND needed < cutoff THEN
                cutoff := needed;
                holder := m.name;
            END IF;
        END LOOP;
        LOOP  -- into the start of the window it falls in, for every window length
            floored := cutoff;
            FOREACH w IN ARRAY widths LOOP
                floored := least(floored, pg_catalog.date_bin(pg_catalog.make_interval(secs => w), cutoff, TIMESTAMP '1970-01-01'));
            END LOOP;
            EXIT WHEN floored = cutoff;
            cutoff := floored;
        END LOOP;
        plan := pg_catalog.jsonb_build_object('deployment', dep.table_name, 'tables', pg_catalog.to_jsonb(kinds),
            'monitors', monitors, 'cutoff', cutoff::text, 'requested_cutoff', requested::text, 'archive', archive);
        IF holder IS NOT NULL AND never IS NULL THEN
            notes := notes || pg_catalog.format('monitor %L still reads rows from %s on', holder, cutoff);
        END IF;
        IF never IS NOT NULL THEN
            notes := notes || pg_catalog.format('monitor %L has never run: it reads every row of %L, so nothing was deleted (run it, then retain again)',
                                                never, dep.table_name);
            kinds := '{}';
        END IF;
        IF archive THEN
            FOREACH kind IN ARRAY kinds LOOP
                IF pg_catalog.length(dep.table_name || CASE kind WHEN 'requests' THEN '' ELSE '_' || kind END || '_archive') > 63 THEN
                    RAISE EXCEPTION 'JobError: action ''retain'': archive table name %_archive is longer than 63 characters; retain without archive, or archive by hand',
                        dep.table_name || CASE kind WHEN 'requests' THEN '' ELSE '_' || kind END USING ERRCODE = 'name_too_long';
                END IF;
                EXECUTE pg_catalog.format('CREATE TABLE IF NOT EXISTS %1$I.%2$I AS SELECT * FROM %1$I.%3$I LIMIT 0', dep.schema_name,
                    dep.table_name || CASE kind WHEN 'requests' THEN '' ELSE '_' || kind END || '_archive',
                    dep.table_name || CASE kind WHEN 'requests' THEN '' ELSE '_' || kind END);
            END LOOP;
        END IF;
        plan := plan || pg_catalog.jsonb_build_object('kinds', pg_catalog.to_jsonb(kinds), 'schema', dep.schema_name);
        IF notes <> '{}' THEN
            plan := plan || pg_catalog.jsonb_build_object('note', pg_catalog.array_to_string(notes, '; '));
        END IF;
    END IF;
    UPDATE indb.job_runs SET result = plan::json WHERE id = run_id;
    RETURN plan;
END
$indb$;

-- name: create_retain_batch_function
-- One batch of a retain run of this session: up to batch_size rows of one kind of its plan
-- (indb.job_retain_plan) deleted, or moved to the archive table; returns how many. Labels
-- whose prediction is kept stay, and requests with a prediction or a label left.
CREATE OR REPLACE FUNCTION indb.job_retain_batch(run_id bigint, kind text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    r record;
    plan jsonb;
    schema_name text;
    base text;
    target text;
    condition text;
    deleted bigint;
    text_sql text;
BEGIN
    SELECT x.result::jsonb AS plan, j.arguments::jsonb AS arguments, j.action INTO r
    FROM indb.job_runs AS x JOIN indb.jobs AS j ON j.name = x.job
    WHERE x.id = run_id AND x.status = 'running' AND x.pid = pg_catalog.pg_backend_pid();
    IF NOT FOUND OR r.action <> 'retain' OR r.plan IS NULL OR NOT coalesce(r.plan -> 'kinds' ? kind, false) THEN
        RAISE EXCEPTION 'JobError: run % is not a running retain run of this session planned to sweep %', run_id, kind
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    plan := r.plan;
    IF kind = 'cron_job_run_details' THEN
        DELETE FROM cron.job_run_details AS x WHERE x.runid = ANY (ARRAY(
            SELECT y.runid FROM cron.job_run_details AS y JOIN cron.job AS c ON c.jobid = y.jobid
            WHERE c.jobname LIKE 'indb.%' AND pg_catalog.timezone('UTC', y.end_time) < (plan ->> 'cutoff')::timestamp
            LIMIT coalesce((r.arguments ->> 'batch_size')::bigint, 10000)));
        GET DIAGNOSTICS deleted = ROW_COUNT;
        RETURN deleted;
    END IF;
    IF kind = 'job_runs' THEN
        target := 'indb.job_runs';
        condition := 'y.finished_at < $1 AND y.status <> ''running'' AND y.id <> $3'
            ' AND y.id <> (SELECT max(l.id) FROM indb.job_runs AS l WHERE l.job = y.job)'
            ' AND y.id IS DISTINCT FROM (SELECT max(s.id) FROM indb.job_runs AS s WHERE s.job = y.job AND s.status = ''succeeded'')';
    ELSE
        schema_name := plan ->> 'schema';
        base := plan ->> 'deployment';
        target := pg_catalog.format('%I.%I', schema_name, base || CASE kind WHEN 'requests' THEN '' ELSE '_' || kind END);
        condition := CASE kind
            WHEN 'predictions' THEN 'y.scored_at < $1'
            WHEN 'ground_truth' THEN pg_catalog.format(
                'y.observed_at < $1 AND NOT EXISTS (SELECT 1 FROM %I.%I AS p WHERE p.id = y.id AND p.scored_at >= $1)',
                schema_name, base || '_predictions')
            ELSE pg_catalog.format(
                'y.created_at < $1 AND NOT EXISTS (SELECT 1 FROM %1$I.%2$I AS p WHERE p.id = y.id)'
                ' AND NOT EXISTS (SELECT 1 FROM %1$I.%3$I AS g WHERE g.id = y.id)',
                schema_name, base || '_predictions', base || '_ground_truth')
        END;
    END IF;
    text_sql := pg_catalog.format('DELETE FROM %1$s AS x WHERE x.ctid = ANY (ARRAY(SELECT y.ctid FROM %1$s AS y WHERE %2$s LIMIT $2))',
                                  target, condition);
    IF (plan ->> 'archive')::boolean THEN
        text_sql := pg_catalog.format('WITH gone AS (%s RETURNING x.*) INSERT INTO %s SELECT * FROM gone', text_sql,
            CASE WHEN kind = 'job_runs' THEN 'indb.job_runs_archive'
                 ELSE pg_catalog.format('%I.%I', schema_name, base || CASE kind WHEN 'requests' THEN '' ELSE '_' || kind END || '_archive') END);
    END IF;
    EXECUTE text_sql USING (plan ->> 'cutoff')::timestamp, coalesce((r.arguments ->> 'batch_size')::bigint, 10000), run_id;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$indb$;

-- name: create_run_procedure
-- Runs a job once (attempts and retries included), recording every attempt in
-- indb.job_runs: CALL indb.run_job('name') from psql, or pg_cron's CALL indb.run_job('name',
-- 'pg_cron'). Call it outside a transaction block (it commits). run_id returns the last
-- attempt's run.
CREATE OR REPLACE PROCEDURE indb.run_job(job_name text, runner text DEFAULT 'manual', INOUT run_id bigint DEFAULT NULL)
LANGUAGE plpgsql AS $indb$
BEGIN
    CALL indb.run_job_for(job_name, runner, CASE WHEN runner = 'pg_cron' THEN 'schedule' ELSE 'manual' END, run_id);
END
$indb$;

-- name: create_run_for_procedure
-- The body of indb.run_job with the reason recorded (schedule, manual, alert). The search_path
-- is pinned per transaction (set_config(..., true)): a procedure with a SET clause may not
-- COMMIT. The action runs in a block catching its error; COMMITs happen outside such blocks.
CREATE OR REPLACE PROCEDURE indb.run_job_for(job_name text, runner text, reason text, INOUT run_id bigint DEFAULT NULL)
LANGUAGE plpgsql AS $indb$
DECLARE
    j record;
    attempt integer := 1;
    run_status text;
    run_error text;
    run_result jsonb;
    run_rows bigint;
    started timestamptz;
    monitor_run bigint;
    kind text;
    plan jsonb;
    deleted jsonb;
    total bigint;
    n bigint;
    caller text;
    lock_key integer;
    batches integer;
BEGIN
    -- inside a transaction block a procedure cannot commit: fail here, before taking any lock
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF runner IS NULL OR runner NOT IN ('manual', 'pg_cron') THEN
        RAISE EXCEPTION 'JobError: runner is manual or pg_cron, got %', coalesce(pg_catalog.quote_literal(runner), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    lock_key := pg_catalog.hashtext(job_name);
    -- a run of this session that ended in an error outside its action (a cancel, a CALL inside
    -- a transaction block) left the session-level lock held: it is not running any more
    WHILE EXISTS (SELECT 1 FROM pg_catalog.pg_locks AS l
                  WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
                    AND l.classid = 1768189541::oid AND l.objid = lock_key::oid AND l.objsubid = 2) LOOP
        PERFORM pg_catalog.pg_advisory_unlock(1768189541, lock_key);
    END LOOP;
    IF NOT pg_catalog.pg_try_advisory_lock(1768189541, lock_key) THEN
        run_id := indb.job_run_begin(job_name, runner, reason, 1, false);
        RETURN;
    END IF;
    LOOP
        BEGIN
            run_id := indb.job_run_begin(job_name, runner, CASE WHEN attempt > 1 THEN 'retry' ELSE reason END, attempt, true);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_catalog.pg_advisory_unlock(1768189541, lock_key);
            RAISE;
        END;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        SELECT x.action, x.arguments::jsonb AS arguments, x.owner, x.retries, x.retry_delay_seconds, x.timeout_seconds
        INTO j FROM indb.jobs AS x WHERE x.name = job_name;
        started := pg_catalog.clock_timestamp();
        run_status := 'succeeded';
        run_error := NULL;
        run_result := NULL;
        run_rows := NULL;
        IF j.action = 'retain' THEN
            run_rows := 0;
            batches := 0;
            deleted := '{}';
            plan := NULL;
            BEGIN
                plan := indb.job_retain_plan(run_id);
            EXCEPTION
                WHEN query_canceled THEN
                    run_status := CASE WHEN SQLERRM LIKE '%statement timeout%' OR (j.timeout_seconds IS NOT NULL AND pg_catalog.clock_timestamp() - started
                        >= pg_catalog.make_interval(secs => j.timeout_seconds)) THEN 'timed_out' ELSE 'failed' END;
                    run_error := SQLERRM;
                WHEN OTHERS THEN
                    run_status := 'failed';
                    run_error := SQLERRM;
            END;
            IF run_error IS NULL THEN
                COMMIT;
                PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
                FOR kind IN SELECT pg_catalog.jsonb_array_elements_text(plan -> 'kinds') LOOP
                    total := 0;
                    LOOP
                        BEGIN
                            n := indb.job_retain_batch(run_id, kind);
                        EXCEPTION
                            WHEN query_canceled THEN
                                run_status := CASE WHEN SQLERRM LIKE '%statement timeout%' OR (j.timeout_seconds IS NOT NULL AND pg_catalog.clock_timestamp() - started
                                    >= pg_catalog.make_interval(secs => j.timeout_seconds)) THEN 'timed_out' ELSE 'failed' END;
                                run_error := SQLERRM;
                            WHEN OTHERS THEN
                                run_status := 'failed';
                                run_error := SQLERRM;
                        END;
                        EXIT WHEN run_error IS NOT NULL;
                        total := total + n;
                        batches := batches + 1;
                        COMMIT;  -- each batch on its own: concurrent inserts wait for one batch at most
                        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
                        EXIT WHEN n < coalesce((j.arguments ->> 'batch_size')::bigint, 10000);
                    END LOOP;
                    deleted := deleted || pg_catalog.jsonb_build_object(kind, total);
                    run_rows := run_rows + total;
                    EXIT WHEN run_error IS NOT NULL;
                END LOOP;
            END IF;
            run_result := coalesce(plan, '{}'::jsonb) - 'kinds' - 'schema'
                || pg_catalog.jsonb_build_object('rows', run_rows, 'batches', batches, 'deleted', deleted);
            IF coalesce((plan ->> 'archive')::boolean, false) THEN
                run_result := run_result || pg_catalog.jsonb_build_object('archived', deleted);
            END IF;
        ELSE
            BEGIN
                IF j.action = 'run_monitor' THEN
                    monitor_run := NULL;
                    CALL indb.run_monitor(j.arguments ->> 'monitor', NULL, monitor_run);
                    run_result := pg_catalog.jsonb_build_object('monitor', j.arguments ->> 'monitor', 'monitor_run_id', monitor_run);
                ELSIF j.action = 'sql' THEN
                    -- with the owner's privileges and PostgreSQL's default search_path (as in
                    -- the owner's own session); back to the caller's role and pinned path after
                    caller := current_user;
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', j.owner);
                    PERFORM pg_catalog.set_config('search_path', '"$user", public', true);
                    EXECUTE pg_catalog.regexp_replace(j.arguments ->> 'statement', ';\s*$', '');
                    GET DIAGNOSTICS run_rows = ROW_COUNT;
                    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', caller);
                    run_result := pg_catalog.jsonb_build_object('rows', run_rows);
                ELSE
                    -- indb's Python (sql/postgres/server_python.sql), as the job's owner, with
                    -- PostgresBackend's search_path (set by the action); back after
                    caller := current_user;
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', j.owner);
                    run_result := indb.run_python_action(run_id);
                    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', caller);
                    IF pg_catalog.jsonb_typeof(run_result -> 'rows') = 'number' THEN
                        run_rows := (run_result ->> 'rows')::numeric::bigint;
                    END IF;
                    -- an action that reports an error failed, and keeps what it recorded
                    IF pg_catalog.jsonb_typeof(run_result -> 'error') = 'string' THEN
                        run_status := 'failed';
                        run_error := run_result ->> 'error';
                    END IF;
                END IF;
            EXCEPTION
                WHEN query_canceled THEN
                    run_status := CASE WHEN SQLERRM LIKE '%statement timeout%' OR (j.timeout_seconds IS NOT NULL AND pg_catalog.clock_timestamp() - started
                        >= pg_catalog.make_interval(secs => j.timeout_seconds)) THEN 'timed_out' ELSE 'failed' END;
                    run_error := SQLERRM;
                WHEN OTHERS THEN
                    run_status := 'failed';
                    run_error := SQLERRM;
            END;
        END IF;
        PERFORM indb.job_run_end(run_id, run_status, run_result, run_rows, run_error);
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        -- a timeout ends the run: its time is spent; a failure is tried again
        EXIT WHEN run_status <> 'failed' OR attempt > j.retries;
        -- backoff: retry_delay, then twice as long before each later attempt
        PERFORM pg_catalog.pg_sleep(j.retry_delay_seconds * 2 ^ (attempt - 1));
        attempt := attempt + 1;
    END LOOP;
    PERFORM pg_catalog.pg_advisory_unlock(1768189541, lock_key);
END
$indb$;

-- name: create_queue_function
-- Called at the end of indb.run_monitor: jobs waiting on an alert this monitor opened or
-- updated become due now (next_run); the tick (indb.run_due_jobs) runs them. Queued rather
-- than run here: run_monitor may itself run inside a job, in a transaction that cannot commit.
CREATE OR REPLACE FUNCTION indb.queue_alert_jobs(monitor_name text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    queued integer;
BEGIN
    UPDATE indb.jobs AS j SET next_run = pg_catalog.timezone('UTC', pg_catalog.now())
    WHERE j.enabled AND j.on_alert ->> 'monitor' = monitor_name
      AND EXISTS (SELECT 1 FROM indb.alerts AS a
                  WHERE coalesce(a.kind, 'monitor') = 'monitor' AND a.monitor = monitor_name
                    AND (j.on_alert ->> 'metric' IS NULL OR a.metric = j.on_alert ->> 'metric')
                    AND a.id > j.last_alert_id);
    GET DIAGNOSTICS queued = ROW_COUNT;
    RETURN queued;
END
$indb$;

-- name: create_watchdog_function
-- Cancels runs past their job's timeout (the query is cancelled inside the action, which
-- records timed_out), and marks 'running' rows whose session is gone as failed. Returns the
-- runs it cancelled.
CREATE OR REPLACE FUNCTION indb.job_watchdog() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    r record;
    cancelled integer := 0;
BEGIN
    FOR r IN SELECT x.id, x.pid, x.started_at, j.timeout_seconds, s.pid AS live, s.state
             FROM indb.job_runs AS x
             LEFT JOIN indb.jobs AS j ON j.name = x.job
             LEFT JOIN pg_catalog.pg_stat_activity AS s
                    ON s.pid = x.pid AND s.datname = pg_catalog.current_database()
                   AND pg_catalog.timezone('UTC', s.backend_start) <= x.started_at
             WHERE x.status = 'running' LOOP
        IF r.live IS NULL OR r.state <> 'active' THEN
            UPDATE indb.job_runs SET status = 'failed', error = 'its session ended or moved on before the run was recorded as finished',
                finished_at = pg_catalog.timezone('UTC', pg_catalog.clock_timestamp())
            WHERE id = r.id AND status = 'running';
        ELSIF r.timeout_seconds IS NOT NULL
              AND pg_catalog.timezone('UTC', pg_catalog.clock_timestamp()) - r.started_at
                  > pg_catalog.make_interval(secs => r.timeout_seconds) THEN
            IF pg_catalog.pg_cancel_backend(r.pid::integer) THEN
                cancelled := cancelled + 1;
            END IF;
        END IF;
    END LOOP;
    RETURN cancelled;
END
$indb$;

-- name: create_alert_seen_function
CREATE OR REPLACE FUNCTION indb.job_alert_seen(job_name text, alert_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    UPDATE indb.jobs AS j SET last_alert_id = greatest(j.last_alert_id, alert_id),
        next_run = indb.job_next_run(indb.job_cron_expression(j.schedule), pg_catalog.timezone('UTC', pg_catalog.now()))
    WHERE j.name = job_name;
END
$indb$;

-- name: create_due_procedure
-- pg_cron's 'indb.tick', every minute (or by hand): the watchdog, then each enabled job
-- waiting on an alert that has a matching alert newer than its last_alert_id, once.
CREATE OR REPLACE PROCEDURE indb.run_due_jobs()
LANGUAGE plpgsql AS $indb$
DECLARE
    r record;
    newest bigint;
    rid bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM indb.job_watchdog();
    COMMIT;
    FOR r IN SELECT j.name, j.on_alert::jsonb AS on_alert, j.last_alert_id FROM indb.jobs AS j
             WHERE j.enabled AND j.on_alert IS NOT NULL ORDER BY j.name LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        SELECT pg_catalog.max(a.id) INTO newest FROM indb.alerts AS a
        WHERE coalesce(a.kind, 'monitor') = 'monitor' AND a.monitor = r.on_alert ->> 'monitor'
          AND (r.on_alert ->> 'metric' IS NULL OR a.metric = r.on_alert ->> 'metric') AND a.id > r.last_alert_id;
        IF newest IS NOT NULL THEN
            PERFORM indb.job_alert_seen(r.name, newest);
            COMMIT;
            rid := NULL;
            CALL indb.run_job_for(r.name, 'pg_cron', 'alert', rid);
        END IF;
    END LOOP;
END
$indb$;

-- name: comment_functions
COMMENT ON FUNCTION indb.schedule(text, text, text, jsonb, jsonb) IS 'Creates a job and its pg_cron entry: indb.schedule(name, ''*/15 * * * *'' | ''@daily'' | ''15 minutes'', action, arguments, options); actions run_monitor, retain, sql, and indb''s Python actions (ingest, refresh_feature_set, rebuild_training_set, materialize_latest, ...) in PL/Python; returns the name.';

-- name: comment_unschedule
COMMENT ON FUNCTION indb.unschedule(text) IS 'Removes a job and its pg_cron entry (its runs stay in indb.job_runs).';

-- name: comment_enable
COMMENT ON FUNCTION indb.enable_job(text, boolean) IS 'Pauses (false) or resumes (true) a job and its pg_cron entry.';

-- name: comment_due
COMMENT ON PROCEDURE indb.run_due_jobs() IS 'pg_cron''s indb.tick, every minute: cancels runs past their timeout, runs jobs waiting on an alert.';

-- name: comment_run_procedure
-- {comment} ends with the fingerprint of what was installed: installed again only when changed.
COMMENT ON PROCEDURE indb.run_job(text, text, bigint) IS {comment};

-- name: installed_server_jobs
SELECT obj_description(to_regprocedure('indb.run_job(text, text, bigint)'), 'pg_proc');

-- name: revoke_public
-- Functions are executable by PUBLIC unless revoked.
REVOKE ALL ON FUNCTION indb.job_cron_expression(text), indb.job_statements(text), indb.job_next_run(text, timestamp), indb.schedule(text, text, text, jsonb, jsonb),
    indb.job_cron_schedule(text, text, text), indb.job_cron_active(bigint, boolean),
    indb.job_cron_unschedule(bigint), indb.job_cron_exists(bigint), indb.job_cron_tick(), indb.job_cron_untick(), indb.unschedule(text), indb.enable_job(text, boolean),
    indb.job_run_begin(text, text, text, integer, boolean), indb.job_run_end(bigint, text, jsonb, bigint, text),
    indb.job_retain_batch(bigint, text), indb.job_retain_plan(bigint), indb.queue_alert_jobs(text), indb.job_watchdog(),
    indb.job_alert_seen(text, bigint) FROM PUBLIC;

-- name: revoke_public_procedures
REVOKE ALL ON PROCEDURE indb.run_job(text, text, bigint), indb.run_job_for(text, text, text, bigint),
    indb.run_due_jobs() FROM PUBLIC;

-- name: grant_define
-- Defining jobs is for admins: a sql job runs any statement, and every job runs on pg_cron as
-- the superuser who installed indb (as monitors' stored SQL does, which admins also write).
GRANT EXECUTE ON FUNCTION indb.schedule(text, text, text, jsonb, jsonb), indb.unschedule(text),
    indb.enable_job(text, boolean) TO {admin};

-- name: grant_run
-- Developers run monitors by hand already; running a job by hand runs only what an admin
-- defined (and a sql job only for its owner: indb.job_run_begin checks).
GRANT EXECUTE ON PROCEDURE indb.run_job(text, text, bigint), indb.run_job_for(text, text, text, bigint) TO {developer};

-- name: grant_run_steps
-- What indb.run_job (run with its caller's rights, so that it may COMMIT) calls: each
-- function acts only on a run of the caller's own session of a job an admin defined.
GRANT EXECUTE ON FUNCTION indb.job_run_begin(text, text, text, integer, boolean),
    indb.job_run_end(bigint, text, jsonb, bigint, text), indb.job_retain_batch(bigint, text), indb.job_retain_plan(bigint) TO {developer};

-- name: grant_queue
-- indb.run_monitor, which developers run, queues the jobs waiting on its alerts.
GRANT EXECUTE ON FUNCTION indb.queue_alert_jobs(text) TO {developer};

-- name: grant_tick
-- The tick cancels other sessions' runs and starts jobs on alerts: admins (and pg_cron).
GRANT EXECUTE ON PROCEDURE indb.run_due_jobs() TO {admin};

-- name: grant_tick_steps
GRANT EXECUTE ON FUNCTION indb.job_watchdog(), indb.job_alert_seen(text, bigint) TO {admin};

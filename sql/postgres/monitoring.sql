-- PostgreSQL versions of monitoring statements, and the procedure pg_cron can schedule.

-- name: reference_order_statistics
-- The reference's values at the given 1-based positions in ascending order (see sql/monitoring.sql).
SELECT ARRAY(SELECT s.a[p] FROM unnest(CAST($positions AS integer[])) WITH ORDINALITY AS t (p, k) ORDER BY t.k)
FROM (SELECT array_agg(CAST({column} AS double precision) ORDER BY CAST({column} AS double precision)) AS a
      FROM {source} WHERE {column} IS NOT NULL) AS s;

-- name: windows
SELECT DISTINCT date_bin(make_interval(secs => $1), {time}, TIMESTAMP '1970-01-01') AS w
FROM {source} AS s WHERE {time} >= $2 ORDER BY w;

-- name: latest_labels
SELECT DISTINCT ON (id) id, label, observed_at
FROM {ground_truth} WHERE id IN (SELECT id FROM {window}) ORDER BY id, observed_at DESC

-- name: first_relabeled_window
-- As sql/monitoring.sql's, in two parts that the deployment's indexes answer without reading
-- the whole history (sql/postgres/deploy.sql: add_scored_at_index, add_label_time_index): rows
-- scored after $2, and rows with a label recorded after $2 (the latest label of a row is
-- later than $2 exactly when one of its labels is). The view's label join is not read by
-- either part, so PostgreSQL leaves it out.
SELECT min(w) FROM (
    SELECT min(date_bin(make_interval(secs => $1), {time}, TIMESTAMP '1970-01-01')) AS w
    FROM {view} AS s WHERE s.scored_at > $2
    UNION ALL
    SELECT min(date_bin(make_interval(secs => $1), {time}, TIMESTAMP '1970-01-01'))
    FROM {view} AS s WHERE s.id IN (SELECT g.id FROM {ground_truth} AS g WHERE g.observed_at > $2)
) AS relabeled;

-- name: create_run_procedure
-- Runs a monitor with no client: the windows since its last run (that window again, as it
-- may have been partial, and any window whose labels arrived since), each through the
-- statements stored for the monitor; updates or opens alerts, sends them to its NOTIFY sinks;
-- returns the run id. search_path is pg_catalog, pg_temp only: every indb and deployment
-- object in the stored statements is schema-qualified, so no role that can create objects
-- in a deployment's schema can put a function or table in front of what a superuser or
-- pg_cron runs here. client_min_messages hides the notices of DROP TABLE IF EXISTS. jit = off:
-- the drift statements are large and run once per window, so compiling them costs more than it
-- saves (1.6 s of JIT for a 2.2 s column at 1M rows, issue 17).
CREATE OR REPLACE PROCEDURE indb.run_monitor(monitor_name text, since timestamp DEFAULT NULL,
                                             INOUT run_id bigint DEFAULT NULL)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET standard_conforming_strings = on
SET client_min_messages = warning
SET jit = off
AS $indb$
DECLARE
    m record;
    s record;
    a record;
    w timestamp;
    relabeled timestamp;
    width interval;
    start_at timestamp;
    last_sent bigint;
BEGIN
    SELECT * INTO m FROM indb.monitors WHERE name = monitor_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound: monitor % does not exist', monitor_name;
    END IF;
    IF m.windows_sql IS NULL THEN
        RAISE EXCEPTION 'MonitorError: monitor % was created by an older indb; drop it and create it again', monitor_name;
    END IF;
    width := make_interval(secs => m.window_seconds);
    run_id := nextval('indb.monitor_run_id');
    start_at := coalesce(since, m.last_window, '-infinity'::timestamp);
    IF since IS NULL AND m.last_run_at IS NOT NULL THEN
        EXECUTE m.relabeled_sql INTO relabeled USING m.window_seconds, m.last_run_at;
        IF relabeled IS NOT NULL AND relabeled < start_at THEN
            start_at := relabeled;
        END IF;
    END IF;
    IF start_at > '-infinity'::timestamp THEN
        start_at := date_bin(width, start_at, TIMESTAMP '1970-01-01');
    END IF;
    DELETE FROM indb.monitor_results WHERE monitor = monitor_name AND window_start >= start_at;
    FOR w IN EXECUTE m.windows_sql USING m.window_seconds, start_at
    LOOP
        FOR s IN SELECT statement FROM indb.monitor_statements WHERE monitor = monitor_name ORDER BY step LOOP
            EXECUTE s.statement USING monitor_name, run_id, w, w + width;
        END LOOP;
    END LOOP;
    -- The same two statements as sql/monitoring.sql's update_alerts and open_alerts.
    UPDATE indb.alerts AS t
    SET last_seen = current_timestamp, run_id = c.run_id, seen_count = t.seen_count + c.new_windows,
        last_window_start = c.last_start, window_end = c.last_end, value = c.value, threshold = c.threshold
    FROM (
        SELECT o.id, max(r.run_id) AS run_id,
               count(CASE WHEN r.window_start > o.last_window_start THEN 1 END) AS new_windows,
               greatest(max(r.window_start), max(o.last_window_start)) AS last_start,
               greatest(max(r.window_end), max(o.window_end)) AS last_end,
               max(CASE WHEN r.latest THEN r.value END) AS value,
               max(CASE WHEN r.latest THEN r.threshold END) AS threshold
        FROM indb.alerts AS o JOIN (
            SELECT x.run_id, x.monitor, x.feature, x.metric, x.model_version, x.window_start, x.window_end,
                   x.value, x.threshold,
                   x.window_start = max(x.window_start) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS latest
            FROM indb.monitor_results AS x WHERE x.run_id = run_monitor.run_id AND x.drifted
        ) AS r ON r.monitor = o.monitor AND r.feature = o.feature AND r.metric = o.metric
              AND coalesce(r.model_version, -1) = coalesce(o.model_version, -1)
        WHERE o.status IN ('open', 'acknowledged')
        GROUP BY o.id
    ) AS c
    WHERE t.id = c.id;
    INSERT INTO indb.alerts (monitor, run_id, window_start, window_end, model_version, feature, metric, value,
                             threshold, status, opened_at, first_seen, last_seen, seen_count, last_window_start)
    SELECT r.monitor, r.run_id, r.window_start, r.last_end, r.model_version, r.feature, r.metric, r.value,
           r.threshold, 'open', current_timestamp, current_timestamp, current_timestamp, r.windows, r.last_start
    FROM (
        SELECT x.*, row_number() OVER (PARTITION BY x.feature, x.metric, x.model_version ORDER BY x.window_start) AS k,
               count(*) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS windows,
               max(x.window_start) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS last_start,
               max(x.window_end) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS last_end
        FROM indb.monitor_results AS x WHERE x.run_id = run_monitor.run_id AND x.drifted
          AND NOT EXISTS (  -- windows a resolved alert already counted do not reopen it
              SELECT 1 FROM indb.alerts AS d
              WHERE d.monitor = x.monitor AND d.feature = x.feature AND d.metric = x.metric
                AND coalesce(d.model_version, -1) = coalesce(x.model_version, -1)
                AND d.status = 'resolved' AND d.last_window_start >= x.window_start)
    ) AS r
    WHERE r.k = 1 AND NOT EXISTS (
        SELECT 1 FROM indb.alerts AS o
        WHERE o.monitor = r.monitor AND o.feature = r.feature AND o.metric = r.metric
          AND coalesce(o.model_version, -1) = coalesce(r.model_version, -1) AND o.status IN ('open', 'acknowledged'));
    -- NOTIFY sinks: every alert opened since the last one sent, as JSON (delivered at commit).
    FOR s IN SELECT id, target, last_alert_id FROM indb.alert_sinks
             WHERE monitor = monitor_name AND kind = 'notify' ORDER BY id LOOP
        last_sent := s.last_alert_id;
        FOR a IN SELECT id, monitor, status, window_start, window_end, model_version, feature, metric, value,
                        threshold, first_seen, last_seen, seen_count
                 FROM indb.alerts WHERE monitor = monitor_name AND id > s.last_alert_id ORDER BY id LOOP
            PERFORM pg_notify(s.target, row_to_json(a)::text);
            last_sent := a.id;
        END LOOP;
        UPDATE indb.alert_sinks SET last_alert_id = last_sent WHERE id = s.id;
    END LOOP;
    UPDATE indb.monitors SET last_run_at = current_timestamp,
        last_window = coalesce((SELECT max(window_start) FROM indb.monitor_results WHERE monitor = monitor_name), last_window)
    WHERE name = monitor_name;
    -- Jobs waiting on this monitor's alerts (on_alert, sql/postgres/jobs.sql) become due now;
    -- pg_cron's indb.tick runs them: this run may itself be a job's, which cannot commit here.
    IF pg_catalog.to_regprocedure('indb.queue_alert_jobs(text)') IS NOT NULL THEN
        PERFORM indb.queue_alert_jobs(monitor_name);
    END IF;
END
$indb$;

-- name: comment_run_procedure
-- {comment} ends with the fingerprint of what install() created, so it runs again only when
-- the procedure or the alert functions changed.
COMMENT ON PROCEDURE indb.run_monitor(text, timestamp, bigint) IS {comment};

-- name: installed_procedure
SELECT obj_description(to_regprocedure('indb.run_monitor(text, timestamp, bigint)'), 'pg_proc');

-- name: call_run_procedure
CALL indb.run_monitor($name, $since, NULL);

-- name: create_alert_functions
-- indb.acknowledge_alert(id, note) and indb.resolve_alert(id, note): the same update as
-- db.acknowledge_alert / db.resolve_alert, for SQL clients; they return the alert's status.
CREATE OR REPLACE FUNCTION indb.set_alert_status(alert_id bigint, new_status text, alert_note text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    found_status text;
BEGIN
    SELECT status INTO found_status FROM indb.alerts WHERE id = alert_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound: alert % does not exist', alert_id;
    END IF;
    IF found_status = 'resolved' THEN
        RAISE EXCEPTION 'MonitorError: alert % is already resolved', alert_id;
    END IF;
    UPDATE indb.alerts SET status = new_status,
        acknowledged_at = CASE WHEN new_status = 'acknowledged' THEN current_timestamp ELSE acknowledged_at END,
        acknowledged_by = CASE WHEN new_status = 'acknowledged' THEN session_user ELSE acknowledged_by END,
        resolved_at = CASE WHEN new_status = 'resolved' THEN current_timestamp ELSE resolved_at END,
        resolved_by = CASE WHEN new_status = 'resolved' THEN session_user ELSE resolved_by END,
        note = coalesce(alert_note, note)
    WHERE id = alert_id;
    RETURN new_status;
END
$indb$;

-- name: create_acknowledge_function
CREATE OR REPLACE FUNCTION indb.acknowledge_alert(alert_id bigint, alert_note text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $indb$ SELECT indb.set_alert_status(alert_id, 'acknowledged', alert_note) $indb$;

-- name: create_resolve_function
CREATE OR REPLACE FUNCTION indb.resolve_alert(alert_id bigint, alert_note text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $indb$ SELECT indb.set_alert_status(alert_id, 'resolved', alert_note) $indb$;

-- name: comment_alert_functions
COMMENT ON FUNCTION indb.resolve_alert(bigint, text) IS 'Resolves an alert (a later crossing of its threshold opens a new one); returns its status.';

-- name: comment_acknowledge_function
COMMENT ON FUNCTION indb.acknowledge_alert(bigint, text) IS 'Acknowledges an alert: it stays the one alert of its ongoing condition; returns its status.';

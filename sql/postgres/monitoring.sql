-- PostgreSQL versions of monitoring statements, and the procedure pg_cron can schedule.

-- name: reference_quantiles
SELECT percentile_cont(CAST($probabilities AS double precision[]))
       WITHIN GROUP (ORDER BY CAST({column} AS double precision))
FROM {source} WHERE {column} IS NOT NULL;

-- name: windows
SELECT DISTINCT date_bin(make_interval(secs => $seconds), scored_at, TIMESTAMP '1970-01-01') AS w
FROM {predictions} WHERE scored_at >= $since ORDER BY w;

-- name: latest_labels
SELECT DISTINCT ON (id) id, label, observed_at
FROM {ground_truth} WHERE id IN (SELECT id FROM {window}) ORDER BY id, observed_at DESC

-- name: first_relabeled_window
SELECT min(date_bin(make_interval(secs => $seconds), scored_at, TIMESTAMP '1970-01-01'))
FROM {view} WHERE observed_at > $since;

-- name: create_run_procedure
-- Runs a monitor with no client: the windows since its last run (that window again, as it
-- may have been partial, and any window whose labels arrived since), each through the
-- statements stored for the monitor; opens alerts; returns the run id.
CREATE OR REPLACE PROCEDURE indb.run_monitor(monitor_name text, since timestamp DEFAULT NULL,
                                             INOUT run_id bigint DEFAULT NULL)
LANGUAGE plpgsql AS $indb$
DECLARE
    m record;
    s record;
    w timestamp;
    relabeled timestamp;
    width interval;
    view_name text;
    start_at timestamp;
BEGIN
    SELECT * INTO m FROM indb.monitors WHERE name = monitor_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NotFound: monitor % does not exist', monitor_name;
    END IF;
    PERFORM set_config('search_path', quote_ident(m.schema_name) || ', indb, pg_catalog, pg_temp', true);
    width := make_interval(secs => m.window_seconds);
    view_name := m.deployment || '_scored';
    run_id := nextval('indb.monitor_run_id');
    start_at := coalesce(since, m.last_window, '-infinity'::timestamp);
    IF since IS NULL AND m.last_run_at IS NOT NULL THEN
        EXECUTE format('SELECT min(date_bin($1, scored_at, TIMESTAMP ''1970-01-01'')) FROM %I.%I WHERE observed_at > $2',
                       m.schema_name, view_name)
            INTO relabeled USING width, m.last_run_at;
        IF relabeled IS NOT NULL AND relabeled < start_at THEN
            start_at := relabeled;
        END IF;
    END IF;
    IF start_at > '-infinity'::timestamp THEN
        start_at := date_bin(width, start_at, TIMESTAMP '1970-01-01');
    END IF;
    DELETE FROM indb.monitor_results WHERE monitor = monitor_name AND window_start >= start_at;
    FOR w IN EXECUTE format('SELECT DISTINCT date_bin($1, scored_at, TIMESTAMP ''1970-01-01'') AS w FROM %I.%I WHERE scored_at >= $2 ORDER BY w',
                            m.schema_name, m.deployment || '_predictions') USING width, start_at
    LOOP
        FOR s IN SELECT statement FROM indb.monitor_statements WHERE monitor = monitor_name ORDER BY step LOOP
            EXECUTE s.statement USING monitor_name, run_id, w, w + width;
        END LOOP;
    END LOOP;
    INSERT INTO indb.alerts (monitor, run_id, window_start, window_end, model_version, feature, metric, value, threshold)
    SELECT r.monitor, r.run_id, r.window_start, r.window_end, r.model_version, r.feature, r.metric, r.value, r.threshold
    FROM indb.monitor_results AS r
    WHERE r.run_id = run_monitor.run_id AND r.drifted
      AND NOT EXISTS (
          SELECT 1 FROM indb.alerts AS a
          WHERE a.monitor = r.monitor AND a.window_start = r.window_start AND a.feature = r.feature
            AND a.metric = r.metric AND coalesce(a.model_version, -1) = coalesce(r.model_version, -1));
    UPDATE indb.monitors SET last_run_at = current_timestamp,
        last_window = coalesce((SELECT max(window_start) FROM indb.monitor_results WHERE monitor = monitor_name), last_window)
    WHERE name = monitor_name;
END
$indb$;

-- name: comment_run_procedure
COMMENT ON PROCEDURE indb.run_monitor(text, timestamp, bigint) IS 'Runs one monitor over its new windows and opens alerts; schedule it with pg_cron: CALL indb.run_monitor(''name'').';

-- name: call_run_procedure
CALL indb.run_monitor($name, $since, NULL);

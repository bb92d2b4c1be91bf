-- Monitoring: reference statistics (computed once, at create_monitor) and the statements a
-- monitor runs per window. Per-window statements take $1 monitor, $2 run id, $3 window
-- start, $4 window end; they are generated once per monitor and stored in
-- indb.monitor_statements, so that indb.run_monitor (PostgreSQL) runs them with no client.
-- {slots} take only identifiers quoted by indb.identifiers and fragments built from them.

-- name: get_monitor
SELECT name, deployment, schema_name, reference, window_size, window_seconds, mode, task, classes,
       probability_columns, n_reference, created_by, created_at, last_run_at, last_window, time_column,
       windows_sql, relabeled_sql
FROM indb.monitors WHERE name = $name;

-- name: list_monitors
SELECT name, deployment, window_size, time_column, mode, n_reference, created_at, last_run_at, last_window
FROM indb.monitors ORDER BY name;

-- name: insert_monitor
INSERT INTO indb.monitors (name, deployment, schema_name, reference, window_size, window_seconds, mode,
                           task, classes, probability_columns, n_reference, created_by)
VALUES ($name, $deployment, $schema_name, $reference, $window_size, $window_seconds, $mode,
        $task, $classes, $probability_columns, $n_reference, $created_by);

-- name: training_set_table
SELECT table_name FROM indb.training_sets WHERE name = $name ORDER BY version DESC LIMIT 1;

-- name: create_reference_like
-- The reference rows, once, while create_monitor reads them (a user's query instead becomes
-- CREATE TEMPORARY TABLE ... AS <its checked tree>).
CREATE TEMPORARY TABLE {temp} AS SELECT * FROM {source} LIMIT 0;

-- name: insert_reference_window
INSERT INTO {temp} SELECT * FROM {view} AS s WHERE {time} >= $start AND {time} < $end;

-- name: insert_reference_table
INSERT INTO {temp} SELECT * FROM {source};

-- name: reference_columns
SELECT * FROM {temp} LIMIT 0;

-- name: reference_rows
SELECT count(*) FROM {temp};

-- name: drop_reference
DROP TABLE IF EXISTS {temp};

-- name: stored_window_queries
SELECT name, deployment, schema_name, time_column, windows_sql, relabeled_sql
FROM indb.monitors ORDER BY name;

-- name: set_window_queries
UPDATE indb.monitors SET time_column = $time_column, windows_sql = $windows_sql, relabeled_sql = $relabeled_sql
WHERE name = $name;

-- name: delete_monitor_features
DELETE FROM indb.monitor_features WHERE monitor = $monitor;

-- name: delete_monitor_bins
DELETE FROM indb.monitor_bins WHERE monitor = $monitor;

-- name: delete_monitor_reference_values
DELETE FROM indb.monitor_reference_values WHERE monitor = $monitor;

-- name: delete_monitor_reference_cells
DELETE FROM indb.monitor_reference_cells WHERE monitor = $monitor;

-- name: delete_monitor_thresholds
DELETE FROM indb.monitor_thresholds WHERE monitor = $monitor;

-- name: delete_monitor_statements
DELETE FROM indb.monitor_statements WHERE monitor = $monitor;

-- name: delete_monitor_results
DELETE FROM indb.monitor_results WHERE monitor = $monitor;

-- name: delete_monitor_alerts
DELETE FROM indb.alerts WHERE monitor = $monitor;

-- name: insert_threshold
INSERT INTO indb.monitor_thresholds (monitor, feature, metric, threshold, direction)
VALUES ($monitor, $feature, $metric, $threshold, $direction);

-- name: insert_statement
INSERT INTO indb.monitor_statements (monitor, step, purpose, statement)
VALUES ($monitor, $step, $purpose, $statement);

-- name: insert_class
INSERT INTO indb.monitor_bins (monitor, feature, grid, bin, lower, category, n)
VALUES ($monitor, 'prediction', 'class', $bin, NULL, $category, 0);

-- name: insert_edge
INSERT INTO indb.monitor_bins (monitor, feature, grid, bin, lower, category, n)
VALUES ($monitor, $feature, 'psi', $bin, $lower, NULL, 0);

-- name: statements
SELECT step, purpose, statement FROM indb.monitor_statements WHERE monitor = $monitor ORDER BY step;

-- name: statement_results
-- The rows one statement of a run wrote, read back in its own transaction by a connection
-- that ran it beside others (runner._run_concurrently; that transaction is rolled back).
SELECT run_id, monitor, window_start, window_end, model_version, feature, metric, category, value,
       threshold, drifted, n_reference, n_current
FROM indb.monitor_results WHERE run_id = $run_id;

-- name: insert_collected_results
-- The rows of statements run beside each other, written by the run's own transaction.
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, model_version, feature,
                                  metric, category, value, threshold, drifted, n_reference, n_current)
SELECT run_id, monitor, window_start, window_end, model_version, feature, metric, category, value,
       threshold, drifted, n_reference, n_current
FROM {rows};

-- name: reference_numeric_summary
INSERT INTO indb.monitor_features (monitor, feature, kind, n, missing, mean, std, min_value, max_value, cells)
SELECT $monitor, $feature, 'numeric', count(v), count(*) - count(v), avg(v), stddev_pop(v), min(v), max(v), $cells
FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {source}) AS s;

-- name: reference_categorical_summary
INSERT INTO indb.monitor_features (monitor, feature, kind, n, missing, mean, std, min_value, max_value, cells)
SELECT $monitor, $feature, 'categorical', count({column}), count(*) - count({column}), NULL, NULL, NULL, NULL, NULL
FROM {source};

-- name: reference_count
SELECT count({column}) FROM {source};

-- name: reference_order_statistics
-- The reference's values at the given 1-based positions in ascending order: the PSI edges are
-- interpolated between them in Python exactly as numpy's quantile does (quantile_cont rounds
-- differently, 1 ulp off at some edges).
SELECT list_select(list_sort(list(CAST({column} AS DOUBLE))), $positions)
FROM {source} WHERE {column} IS NOT NULL;

-- name: reference_values
INSERT INTO indb.monitor_reference_values (monitor, feature, value, n)
SELECT $monitor, $feature, v, count(*) FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {source}) AS s
WHERE v IS NOT NULL GROUP BY v ORDER BY v;

-- name: reference_fine_cells
-- Exact mode's reference side, once: per fine cell (as numeric_exact_columns assigns them) the
-- rows, the sum of (value - cell start), the largest value, and the distinct values with counts.
INSERT INTO indb.monitor_reference_cells (monitor, feature, cell, n, s, top, vals, counts)
WITH f AS (
    SELECT min_value AS lo, max_value AS hi, CAST({fine_cells} AS BIGINT) AS kf,
           (max_value - min_value) / {fine_cells} AS width
    FROM indb.monitor_features WHERE monitor = $monitor AND feature = $feature
)
SELECT $monitor, $feature, x.fine, sum(x.n), sum(x.dv * x.n), max(x.v), list(x.v ORDER BY x.v), list(x.n ORDER BY x.v)
FROM (
    SELECT y.v, y.n, y.fine, y.v - (f.lo + y.fine * f.width) AS dv
    FROM (SELECT {fine_expression} AS fine, s.v, s.n
          FROM (SELECT value AS v, n FROM indb.monitor_reference_values
                WHERE monitor = $monitor AND feature = $feature) AS s, f) AS y, f
) AS x
GROUP BY x.fine;

-- name: reference_psi_counts
-- The count of each quantile bin: bin b holds edge_b <= v < edge_(b+1).
UPDATE indb.monitor_bins AS b SET n = c.n
FROM (
    SELECT {bin_expression} AS bin, count(*) AS n
    FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {source}) AS s,
         (SELECT {edge_pivot} FROM indb.monitor_bins
          WHERE monitor = $monitor AND feature = $feature AND grid = 'psi') AS e
    WHERE v IS NOT NULL GROUP BY 1
) AS c
WHERE b.monitor = $monitor AND b.feature = $feature AND b.grid = 'psi' AND b.bin = c.bin;

-- name: reference_cells
-- Equal-width cells over the reference range, for binned mode.
INSERT INTO indb.monitor_bins (monitor, feature, grid, bin, lower, category, n)
SELECT $monitor, $feature, 'cell', {cell_expression} AS cell, NULL, NULL, count(*)
FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {source}) AS s,
     (SELECT min_value AS lo, max_value AS hi, cells AS k FROM indb.monitor_features
      WHERE monitor = $monitor AND feature = $feature) AS f
WHERE v IS NOT NULL GROUP BY 4;

-- name: reference_categories
INSERT INTO indb.monitor_bins (monitor, feature, grid, bin, lower, category, n)
SELECT $monitor, $feature, 'category', CAST(row_number() OVER (ORDER BY count(*) DESC, c) AS INTEGER), NULL, c, count(*)
FROM (SELECT CAST({column} AS VARCHAR) AS c FROM {source}) AS s WHERE c IS NOT NULL GROUP BY c;

-- name: drop_window
DROP TABLE IF EXISTS {window};

-- name: create_window
-- The window's rows, read once per window for every statement after it: the request rows
-- joined with their predictions whose window time ({time}: scored_at, or the monitor's
-- time_column) falls in the window, with only the monitored columns ({columns}: request
-- columns from r, features recorded at scoring time from p) and what accuracy needs from the
-- predictions; no ground truth. ($1 and $2 are named so that every stored statement takes
-- the same four values.) {served}: only the prediction the application saw (challengers' shadow
-- rows are not), on prediction tables that say so (deployed since migration 015).
CREATE TEMPORARY TABLE {window} AS
SELECT {columns}
FROM {table} AS r JOIN {predictions} AS p ON p.id = r.id{served}
WHERE {time} >= $3 AND {time} < $4 AND $1 IS NOT NULL AND $2 IS NOT NULL;

-- name: latest_labels
-- The latest label of each row of the window (as the scored view picks it).
SELECT id, arg_max(label, observed_at) AS label, max(observed_at) AS observed_at
FROM {ground_truth} WHERE id IN (SELECT id FROM {window}) GROUP BY id

-- name: numeric_exact
-- KS D and its p-value, Wasserstein-1 over the reference population std, PSI and
-- Jensen-Shannon on the reference quantile bins, all against the exact reference ECDF.
-- No sort of both samples: counts, sums and maxima per fine equal-width cell give the ECDFs at
-- every cell's last value; only the values of the few cells where the gap could change sign or
-- exceed the largest gap at those points are sorted (the argument: engine/monitoring/drift.py).
-- The reference side (its cell sums and each cell's values) is read from
-- indb.monitor_reference_cells, stored once at create (reference_fine_cells). The window's PSI
-- bin counts come from its cells too: a cell with no PSI edge in it lies inside one bin, and
-- the cells holding an edge are resolved value by value with the others (flagged).
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, feature, metric, category,
                                  value, threshold, drifted, n_reference, n_current)
WITH f AS (
    SELECT CAST(n AS DOUBLE) AS nr, greatest(std, 0.001) AS scale, min_value AS lo, max_value AS hi,
           CAST({fine_cells} AS BIGINT) AS kf, (max_value - min_value) / {fine_cells} AS width
    FROM indb.monitor_features WHERE monitor = $1 AND feature = {name}
),
e AS (SELECT {edge_pivot} FROM indb.monitor_bins WHERE monitor = $1 AND feature = {name} AND grid = 'psi'),
-- The fine cell of each PSI edge (c1 .. c9).
ef AS MATERIALIZED (SELECT {edge_cells} FROM e, f),
-- Read twice (cell sums, then the values of the chosen cells): recomputed, not stored.
cur AS NOT MATERIALIZED (
    SELECT x.v, x.fine, x.v - (f.lo + x.fine * f.width) AS dv
    FROM (SELECT {fine_expression} AS fine, s.v
          FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {window} WHERE {column} IS NOT NULL) AS s, f) AS x, f
),
-- Per cell: rows, sum of (value - cell start) and largest value, of each sample (the
-- reference's stored at create, in indb.monitor_reference_cells).
cc AS (SELECT fine, count(*) AS n, sum(dv) AS s, max(v) AS top FROM cur GROUP BY fine),
rc AS (SELECT cell AS fine, n, s, top FROM indb.monitor_reference_cells WHERE monitor = $1 AND feature = {name}),
totals AS MATERIALIZED (
    SELECT f.nr, CAST(coalesce((SELECT sum(n) FROM cc), 0) AS DOUBLE) AS nc, f.scale, f.lo, f.width FROM f
),
running AS (
    SELECT u.fine, u.nr, u.nc, u.sr, u.sc, u.top, lag(u.top) OVER (ORDER BY u.fine) AS prev_top,
           sum(u.nr) OVER (ORDER BY u.fine ROWS UNBOUNDED PRECEDING) AS cum_r,
           sum(u.nc) OVER (ORDER BY u.fine ROWS UNBOUNDED PRECEDING) AS cum_c
    FROM (
        SELECT coalesce(r.fine, c.fine) AS fine, coalesce(r.n, 0) AS nr, coalesce(c.n, 0) AS nc,
               coalesce(r.s, 0) AS sr, coalesce(c.s, 0) AS sc,
               CASE WHEN r.top IS NULL THEN c.top WHEN c.top IS NULL THEN r.top ELSE greatest(r.top, c.top) END AS top
        FROM rc AS r FULL OUTER JOIN cc AS c ON c.fine = r.fine
    ) AS u
),
-- a: the gap F_ref - F_cur before the cell, b: after it; low and high bound it inside the cell.
gaps AS MATERIALIZED (
    SELECT g.*, greatest(g.a - g.pc, g.b - g.pr) AS low, least(g.a + g.pr, g.b + g.pc) AS high
    FROM (
        SELECT r.fine, r.nr, r.nc, r.top, r.prev_top, r.cum_r - r.nr AS before_r, r.cum_c - r.nc AS before_c,
               CAST(r.cum_r - r.nr AS DOUBLE) / t.nr - CAST(r.cum_c - r.nc AS DOUBLE) / t.nc AS a,
               CAST(r.cum_r AS DOUBLE) / t.nr - CAST(r.cum_c AS DOUBLE) / t.nc AS b,
               CAST(r.nr AS DOUBLE) / t.nr AS pr, CAST(r.nc AS DOUBLE) / t.nc AS pc,
               r.sr / t.nr AS mr, r.sc / t.nc AS mc, r.top - (t.lo + r.fine * t.width) AS top_offset
        FROM running AS r, totals AS t WHERE t.nc > 0
    ) AS g
),
edge AS MATERIALIZED (SELECT max(abs(b)) AS d FROM gaps),
-- Cells to resolve value by value: the gap may change sign inside, or exceed edge.d, or a PSI
-- edge lies inside (any cell may be resolved: it is exact either way).
flagged AS MATERIALIZED (
    SELECT g.fine, g.a, g.prev_top, g.before_r, g.before_c,
           coalesce(sum(g.nr) OVER (ORDER BY g.fine ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS skip_r,
           coalesce(sum(g.nc) OVER (ORDER BY g.fine ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS skip_c
    FROM gaps AS g, edge AS x, ef
    WHERE (g.low < 0 AND g.high > 0) OR greatest(abs(g.low), abs(g.high)) > x.d OR {edge_cell_match}
),
points AS MATERIALIZED (
    SELECT fine, v, sum(nr) AS nr, sum(nc) AS nc FROM (
        SELECT cell AS fine, unnest(vals) AS v, unnest(counts) AS nr, 0 AS nc FROM indb.monitor_reference_cells
        WHERE monitor = $1 AND feature = {name} AND cell IN (SELECT fine FROM flagged)
        UNION ALL
        SELECT fine, v, 0 AS nr, 1 AS nc FROM cur WHERE fine IN (SELECT fine FROM flagged)
    ) AS u GROUP BY fine, v
),
-- Cells are ordered as values are, so one sort by value runs through the chosen cells in order;
-- skip_r/skip_c remove the earlier chosen cells' rows from the running sums.
ordered AS (
    SELECT fine, v, sum(nr) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS run_r,
           sum(nc) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS run_c,
           lead(v) OVER (ORDER BY v) AS next_v, lead(fine) OVER (ORDER BY v) AS next_fine,
           lag(fine) OVER (ORDER BY v) AS prev_fine
    FROM points
),
inside AS (
    SELECT CAST(g.before_r + o.run_r - g.skip_r AS DOUBLE) / t.nr
         - CAST(g.before_c + o.run_c - g.skip_c AS DOUBLE) / t.nc AS gap,
           CASE WHEN o.next_fine = o.fine THEN o.next_v - o.v ELSE 0 END AS width,
           CASE WHEN o.prev_fine = o.fine THEN 0 ELSE abs(g.a) * coalesce(o.v - g.prev_top, 0) END AS lead_in
    FROM ordered AS o JOIN flagged AS g ON g.fine = o.fine CROSS JOIN totals AS t
),
-- Elsewhere the gap keeps its sign through the cell: its integral from the previous cell's last
-- value to this one's is a (top - prev_top) + sum over rows of share (top - value), per sample.
distance AS MATERIALIZED (
    SELECT greatest(x.d, coalesce((SELECT max(abs(gap)) FROM inside), 0)) AS d,
           (coalesce((SELECT sum(abs(gap) * width + lead_in) FROM inside), 0)
            + coalesce((SELECT sum(abs(g.a * coalesce(g.top - g.prev_top, 0)
                                       + g.pr * g.top_offset - g.mr - (g.pc * g.top_offset - g.mc)))
                        FROM gaps AS g WHERE g.fine NOT IN (SELECT fine FROM flagged)), 0)) / t.scale AS w1
    FROM edge AS x, totals AS t WHERE t.nc > 0
),
{psi_ctes}
metrics AS (
    SELECT 'ks_d' AS metric, d AS value FROM distance
    UNION ALL SELECT 'ks_pvalue', {ks_pvalue}(d, CAST(t.nr AS BIGINT), CAST(t.nc AS BIGINT)) FROM distance, totals AS t
    UNION ALL SELECT 'wasserstein', w1 FROM distance
    UNION ALL SELECT 'psi', psi FROM divergence
    UNION ALL SELECT 'js', js FROM divergence
)
{insert_tail};

-- name: numeric_binned
-- One pass over the window: rows counted per equal-width reference cell and quantile bin,
-- plus exact sums outside the reference range. PSI and JS are exact; KS D and Wasserstein
-- come with their error bounds (ks_d_bound, wasserstein_bound): see engine/monitoring/drift.py.
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, feature, metric, category,
                                  value, threshold, drifted, n_reference, n_current)
WITH f AS (
    SELECT CAST(n AS DOUBLE) AS nr, greatest(std, 0.001) AS scale, min_value AS lo, max_value AS hi, cells AS k
    FROM indb.monitor_features WHERE monitor = $1 AND feature = {name}
),
e AS (SELECT {edge_pivot} FROM indb.monitor_bins WHERE monitor = $1 AND feature = {name} AND grid = 'psi'),
pass AS MATERIALIZED (
    SELECT {cell_expression} AS cell, {bin_expression} AS bin, count(*) AS n, sum(v) AS s
    FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {window} WHERE {column} IS NOT NULL) AS cur, f, e
    GROUP BY 1, 2
),
totals AS MATERIALIZED (SELECT f.nr, CAST((SELECT sum(n) FROM pass) AS DOUBLE) AS nc, f.scale, f.lo, f.hi, f.k FROM f),
cells AS (
    SELECT cell, sum(nr) AS nr, sum(nc) AS nc FROM (
        SELECT bin AS cell, n AS nr, 0 AS nc FROM indb.monitor_bins
        WHERE monitor = $1 AND feature = {name} AND grid = 'cell'
        UNION ALL
        SELECT cell, 0 AS nr, sum(n) AS nc FROM pass GROUP BY cell
        UNION ALL
        SELECT g.cell, 0 AS nr, 0 AS nc FROM totals AS t, generate_series(0, t.k - 1) AS g(cell)
    ) AS u GROUP BY cell
),
ecdf AS (
    SELECT c.cell, CAST(c.nr AS DOUBLE) / t.nr AS pr, CAST(c.nc AS DOUBLE) / t.nc AS pc,
           CAST(sum(c.nr) OVER (ORDER BY c.cell ROWS UNBOUNDED PRECEDING) AS DOUBLE) / t.nr
         - CAST(sum(c.nc) OVER (ORDER BY c.cell ROWS UNBOUNDED PRECEDING) AS DOUBLE) / t.nc AS upper_gap
    FROM cells AS c, totals AS t WHERE t.nc > 0
),
gaps AS MATERIALIZED (
    SELECT cell, pr, pc, upper_gap, coalesce(lag(upper_gap) OVER (ORDER BY cell), 0) AS lower_gap FROM ecdf
),
outside AS (
    SELECT coalesce(sum(CASE WHEN p.cell < 0 THEN t.lo * p.n - p.s END), 0)
         + coalesce(sum(CASE WHEN p.cell >= t.k THEN p.s - t.hi * p.n END), 0) AS area
    FROM pass AS p, totals AS t
),
distance AS MATERIALIZED (
    SELECT max(abs(g.upper_gap)) AS d,
           max(CASE WHEN g.cell >= 0 AND g.cell < t.k THEN greatest(g.pr, g.pc) ELSE 0 END) AS d_bound,
           (sum(CASE WHEN g.cell >= 0 AND g.cell < t.k THEN abs(g.lower_gap + g.upper_gap) / 2 END)
               * (t.hi - t.lo) / t.k + o.area / t.nc) / t.scale AS w1,
           sum(CASE WHEN g.cell >= 0 AND g.cell < t.k THEN (g.pr + g.pc) / 2 END) * (t.hi - t.lo) / t.k
               / t.scale AS w1_bound
    FROM gaps AS g, totals AS t, outside AS o GROUP BY t.nr, t.nc, t.scale, t.hi, t.lo, t.k, o.area
),
{binned_psi_ctes}
metrics AS (
    SELECT 'ks_d' AS metric, d AS value FROM distance
    UNION ALL SELECT 'ks_d_bound', d_bound FROM distance
    UNION ALL SELECT 'ks_pvalue', {ks_pvalue}(d, CAST(t.nr AS BIGINT), CAST(t.nc AS BIGINT)) FROM distance, totals AS t
    UNION ALL SELECT 'wasserstein', w1 FROM distance
    UNION ALL SELECT 'wasserstein_bound', w1_bound FROM distance
    UNION ALL SELECT 'psi', psi FROM divergence
    UNION ALL SELECT 'js', js FROM divergence
)
{insert_tail};

-- name: categorical
-- Chi-square over the reference's categories (expected = reference share x current rows in
-- them), PSI and Jensen-Shannon over every category, and the categories the reference lacks.
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, feature, metric, category,
                                  value, threshold, drifted, n_reference, n_current)
WITH cc AS MATERIALIZED (
    SELECT CAST({column} AS VARCHAR) AS category, count(*) AS n FROM {window}
    WHERE {column} IS NOT NULL GROUP BY 1
),
rc AS (
    SELECT category, n FROM indb.monitor_bins WHERE monitor = $1 AND feature = {name} AND grid = 'category'
),
joined AS (
    SELECT coalesce(r.category, c.category) AS category, CAST(coalesce(r.n, 0) AS DOUBLE) AS rn,
           CAST(coalesce(c.n, 0) AS DOUBLE) AS cn
    FROM rc AS r FULL OUTER JOIN cc AS c ON r.category = c.category
),
totals AS MATERIALIZED (
    SELECT sum(rn) AS nr, sum(cn) AS nc, sum(CASE WHEN rn > 0 THEN cn ELSE 0 END) AS nk,
           count(CASE WHEN rn > 0 THEN 1 END) AS k
    FROM joined
),
shares AS (
    SELECT j.category, j.rn, j.cn, j.rn / t.nr AS p, j.cn / t.nc AS q,
           CASE WHEN j.rn > 0 THEN j.cn / t.nc ELSE 0 END AS q_known
    FROM joined AS j, totals AS t WHERE t.nc > 0
),
chi AS MATERIALIZED (
    SELECT sum((s.cn - s.rn * t.nk / t.nr) * (s.cn - s.rn * t.nk / t.nr) / (s.rn * t.nk / t.nr)) AS x,
           max(t.k) - 1 AS dof
    FROM shares AS s, totals AS t WHERE s.rn > 0 AND t.nk > 0
),
divergence AS (
    SELECT sum((greatest(q, {epsilon}) - greatest(p, {epsilon})) * ln(greatest(q, {epsilon}) / greatest(p, {epsilon}))) AS psi,
           sqrt(greatest(sum(CASE WHEN p > 0 THEN p * ln(2 * p / (p + q)) ELSE 0 END
                           + CASE WHEN q > 0 THEN q * ln(2 * q / (p + q)) ELSE 0 END) / 2, 0)) AS js
    FROM shares
),
metrics AS (
    SELECT 'chi2' AS metric, x AS value FROM chi
    UNION ALL SELECT 'chi2_pvalue', {chi2_pvalue}(x, CAST(dof AS BIGINT)) FROM chi
    UNION ALL SELECT 'psi', psi FROM divergence
    UNION ALL SELECT 'js', js FROM divergence
    UNION ALL SELECT 'new_categories', CAST(count(*) AS DOUBLE) FROM shares WHERE rn = 0
    UNION ALL SELECT 'new_category_share', coalesce(sum(q), 0) FROM shares WHERE rn = 0
)
{insert_tail}
-- One row per category the reference lacks, from the same grouping of the window (issue 17: a
-- second statement grouped the window's column again; monitors created before keep it among
-- their stored statements).
UNION ALL
SELECT $2, $1, $3, $4, {name}, 'new_category', c.category, CAST(c.n AS DOUBLE), NULL, NULL, NULL, NULL
FROM cc AS c
WHERE NOT EXISTS (
    SELECT 1 FROM indb.monitor_bins AS b
    WHERE b.monitor = $1 AND b.feature = {name} AND b.grid = 'category' AND b.category = c.category
);

-- name: windows
-- Window starts (multiples of the window length since 1970, $1 seconds) with rows at or after
-- $2 by the monitor's window time ({time} over {source} AS s: the predictions' scored_at, or
-- the request table's time_column). Stored with the monitor; a run executes it as stored.
SELECT DISTINCT time_bucket(to_seconds(CAST($1 AS BIGINT)), {time}, TIMESTAMP '1970-01-01') AS w
FROM {source} AS s WHERE {time} >= $2 ORDER BY w;

-- name: first_relabeled_window
-- The earliest window with a label recorded, or a row scored, after the previous run ($2), by
-- the window time read from the scored view: late rows (backfilled or replayed, by a
-- time_column) and late labels make their window computed again.
SELECT min(time_bucket(to_seconds(CAST($1 AS BIGINT)), {time}, TIMESTAMP '1970-01-01'))
FROM {view} AS s WHERE s.observed_at > $2 OR s.scored_at > $2;

-- name: delete_results
DELETE FROM indb.monitor_results WHERE monitor = $monitor AND window_start >= $since;

-- name: next_run_id
SELECT nextval('indb.monitor_run_id');

-- name: update_alerts
-- An ongoing condition keeps one alert: a crossing (monitor, column, metric, model version)
-- that already has an open or acknowledged alert updates it (last seen, latest window and
-- value, and seen_count grows by the windows after the last one it counted).
UPDATE indb.alerts AS a
SET last_seen = current_timestamp, run_id = c.run_id, seen_count = a.seen_count + c.new_windows,
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
        FROM indb.monitor_results AS x WHERE x.run_id = $run_id AND x.drifted
    ) AS r ON r.monitor = o.monitor AND r.feature = o.feature AND r.metric = o.metric
          AND coalesce(r.model_version, -1) = coalesce(o.model_version, -1)
    WHERE o.status IN ('open', 'acknowledged')
    GROUP BY o.id
) AS c
WHERE a.id = c.id;

-- name: open_alerts
-- A crossing with no open or acknowledged alert opens one, from its earliest window in the run.
INSERT INTO indb.alerts (monitor, run_id, window_start, window_end, model_version, feature, metric, value,
                         threshold, status, opened_at, first_seen, last_seen, seen_count, last_window_start)
SELECT r.monitor, r.run_id, r.window_start, r.last_end, r.model_version, r.feature, r.metric, r.value,
       r.threshold, 'open', current_timestamp, current_timestamp, current_timestamp, r.windows, r.last_start
FROM (
    SELECT x.*, row_number() OVER (PARTITION BY x.feature, x.metric, x.model_version ORDER BY x.window_start) AS k,
           count(*) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS windows,
           max(x.window_start) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS last_start,
           max(x.window_end) OVER (PARTITION BY x.feature, x.metric, x.model_version) AS last_end
    FROM indb.monitor_results AS x WHERE x.run_id = $run_id AND x.drifted
      AND NOT EXISTS (  -- windows a resolved alert already counted do not reopen it
          SELECT 1 FROM indb.alerts AS d
          WHERE d.monitor = x.monitor AND d.feature = x.feature AND d.metric = x.metric
            AND coalesce(d.model_version, -1) = coalesce(x.model_version, -1)
            AND d.status = 'resolved' AND d.last_window_start >= x.window_start)
) AS r
WHERE r.k = 1 AND NOT EXISTS (
    SELECT 1 FROM indb.alerts AS a
    WHERE a.monitor = r.monitor AND a.feature = r.feature AND a.metric = r.metric
      AND coalesce(a.model_version, -1) = coalesce(r.model_version, -1) AND a.status IN ('open', 'acknowledged')
);

-- name: set_alert_status
-- Acknowledge (still counted as ongoing) or resolve (a later crossing opens a new alert).
UPDATE indb.alerts SET status = $status,
    acknowledged_at = CASE WHEN $status = 'acknowledged' THEN current_timestamp ELSE acknowledged_at END,
    acknowledged_by = CASE WHEN $status = 'acknowledged' THEN $actor ELSE acknowledged_by END,
    resolved_at = CASE WHEN $status = 'resolved' THEN current_timestamp ELSE resolved_at END,
    resolved_by = CASE WHEN $status = 'resolved' THEN $actor ELSE resolved_by END,
    note = coalesce($note, note)
WHERE id = $id AND status <> 'resolved';

-- name: get_alert
SELECT id, monitor, status FROM indb.alerts WHERE id = $id;

-- name: insert_sink
INSERT INTO indb.alert_sinks (monitor, kind, target, last_alert_id)
VALUES ($monitor, $kind, $target, coalesce((SELECT max(id) FROM indb.alerts WHERE monitor = $monitor), 0));

-- name: sinks
SELECT id, monitor, kind, target, last_alert_id FROM indb.alert_sinks WHERE monitor = $monitor ORDER BY id;

-- name: pending_alerts
-- Alerts a sink has not been sent: the ones opened after the last it was sent.
SELECT id, monitor, status, window_start, window_end, model_version, feature, metric, value, threshold,
       first_seen, last_seen, seen_count
FROM indb.alerts WHERE monitor = $monitor AND id > $after ORDER BY id;

-- name: sink_sent
UPDATE indb.alert_sinks SET last_alert_id = $last WHERE id = $id;

-- name: delete_sinks
DELETE FROM indb.alert_sinks WHERE monitor = $monitor;

-- name: finish_run
UPDATE indb.monitors SET last_run_at = current_timestamp,
    last_window = coalesce((SELECT max(window_start) FROM indb.monitor_results WHERE monitor = $monitor), last_window)
WHERE name = $monitor;

-- name: run_summary
SELECT count(DISTINCT window_start) AS windows, count(*) AS results,
       count(CASE WHEN drifted THEN 1 END) AS crossed
FROM indb.monitor_results WHERE run_id = $run_id;

-- name: alerts_of_run
SELECT id, monitor, status, window_start, model_version, feature, metric, value, threshold, seen_count
FROM indb.alerts WHERE run_id = $run_id ORDER BY window_start, feature, metric;

-- name: report_features
SELECT feature, kind FROM indb.monitor_features WHERE monitor = $monitor ORDER BY feature;

-- name: report_reference_categories
SELECT category, n FROM indb.monitor_bins WHERE monitor = $monitor AND feature = $feature
AND grid = 'category' ORDER BY bin;

-- name: report_reference_bins
SELECT bin, lower, n FROM indb.monitor_bins WHERE monitor = $monitor AND feature = $feature
AND grid = 'psi' ORDER BY bin;

-- name: report_window_categories
-- The report's window, by the monitor's window time ({time}: scored_at or its time_column).
SELECT CAST({column} AS VARCHAR) AS category, count(*) AS n FROM {view}
WHERE {time} >= $start AND {time} < $end AND {column} IS NOT NULL GROUP BY 1;

-- name: report_window_values
SELECT {column} AS v FROM {view} WHERE {time} >= $start AND {time} < $end AND {column} IS NOT NULL;

-- name: results
SELECT run_id, window_start, window_end, model_version, feature, metric, category, value, threshold,
       drifted, n_reference, n_current, computed_at
FROM indb.monitor_results WHERE monitor = $monitor
ORDER BY window_start, feature, metric, model_version, category;

-- name: alerts
SELECT id, monitor, status, window_start, window_end, model_version, feature, metric, value, threshold,
       first_seen, last_seen, seen_count, last_window_start, opened_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by, note
FROM indb.alerts WHERE monitor = $monitor ORDER BY id;

-- name: delete_monitor
DELETE FROM indb.monitors WHERE name = $monitor;

-- name: accuracy_classification
-- Per model version, over the window's rows whose label has arrived: accuracy, precision,
-- recall and F1 (the positive class, the last in class order, for two classes; macro
-- averages over the classes seen otherwise), ROC AUC (two classes; ties count half), log
-- loss (probabilities clipped to [eps, 1 - eps]), confusion counts, label delay and share.
-- Only labeled rows go through the join with the labels; the window's rows per version are one
-- count (as accuracy_regression).
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, model_version, feature, metric,
                                  category, value, threshold, drifted, n_reference, n_current)
WITH cls AS (
    SELECT {class_pivot} FROM indb.monitor_bins WHERE monitor = $1 AND feature = 'prediction' AND grid = 'class'
),
counts AS (
    SELECT model_version, CAST(count(*) AS DOUBLE) AS n_rows FROM {window}
    WHERE model_version IS NOT NULL GROUP BY model_version
),
labeled AS MATERIALIZED (
    SELECT v.model_version, CAST(v.prediction AS VARCHAR) AS predicted, CAST(g.label AS VARCHAR) AS actual,
           {label_probability} AS p_label, {score} AS score, cls.positive,
           epoch(g.observed_at) - epoch(v.scored_at) AS delay
    FROM {window} AS v CROSS JOIN cls JOIN ({labels}) AS g ON g.id = v.id
    WHERE v.model_version IS NOT NULL AND g.label IS NOT NULL
),
classes AS (SELECT category FROM indb.monitor_bins WHERE monitor = $1 AND feature = 'prediction' AND grid = 'class'),
per_class AS MATERIALIZED (
    SELECT l.model_version, c.category,
           CAST(sum(CASE WHEN l.predicted = c.category AND l.actual = c.category THEN 1 ELSE 0 END) AS DOUBLE) AS tp,
           CAST(sum(CASE WHEN l.predicted = c.category THEN 1 ELSE 0 END) AS DOUBLE) AS pp,
           CAST(sum(CASE WHEN l.actual = c.category THEN 1 ELSE 0 END) AS DOUBLE) AS ap,
           max(CASE WHEN c.category = l.positive THEN 1 ELSE 0 END) AS is_positive
    FROM labeled AS l, classes AS c GROUP BY l.model_version, c.category
),
scores AS MATERIALIZED (
    SELECT model_version,
           {precision} AS precision, {recall} AS recall, {f1} AS f1
    FROM per_class GROUP BY model_version
),
auc_counts AS (
    SELECT model_version, score,
           CAST(sum(CASE WHEN actual = positive THEN 1 ELSE 0 END) AS DOUBLE) AS pos,
           CAST(sum(CASE WHEN actual = positive THEN 0 ELSE 1 END) AS DOUBLE) AS neg
    FROM labeled GROUP BY model_version, score
),
auc AS MATERIALIZED (
    SELECT model_version, sum(pos * (neg_below + neg / 2)) / nullif(sum(pos) * sum(neg), 0) AS roc_auc
    FROM (
        SELECT model_version, pos, neg,
               coalesce(sum(neg) OVER (PARTITION BY model_version ORDER BY score
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS neg_below
        FROM auc_counts
    ) AS a GROUP BY model_version
),
summary AS MATERIALIZED (
    SELECT c.model_version, c.n_rows, coalesce(l.n, 0) AS n, l.accuracy, l.log_loss, l.delay
    FROM counts AS c LEFT JOIN (
        SELECT model_version, CAST(count(*) AS DOUBLE) AS n,
               avg(CASE WHEN predicted = actual THEN 1.0 ELSE 0.0 END) AS accuracy,
               -avg(ln(greatest(least(p_label, 1 - 2.220446049250313e-16), 2.220446049250313e-16))) AS log_loss,
               avg(delay) AS delay
        FROM labeled GROUP BY model_version
    ) AS l ON l.model_version = c.model_version
),
metrics AS (
    SELECT model_version, 'accuracy' AS metric, CAST(NULL AS VARCHAR) AS category, accuracy AS value FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'log_loss', NULL, log_loss FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'labeled_rows', NULL, n FROM summary
    UNION ALL SELECT model_version, 'rows', NULL, n_rows FROM summary
    UNION ALL SELECT model_version, 'labeled_share', NULL, n / n_rows FROM summary
    UNION ALL SELECT model_version, 'label_delay_seconds', NULL, delay FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'precision', NULL, precision FROM scores
    UNION ALL SELECT model_version, 'recall', NULL, recall FROM scores
    UNION ALL SELECT model_version, 'f1', NULL, f1 FROM scores
    UNION ALL SELECT model_version, 'roc_auc', NULL, roc_auc FROM auc WHERE {binary}
    UNION ALL SELECT model_version, 'confusion', actual || ' -> ' || predicted, CAST(count(*) AS DOUBLE)
              FROM labeled GROUP BY model_version, actual, predicted
)
{insert_tail};

-- name: accuracy_regression
-- Per model version, over rows whose label has arrived: MAE, RMSE, R2 and MAPE (|error| over
-- max(|label|, eps), as scikit-learn), label delay and share. Only labeled rows go through the
-- join with the labels (issue 17: all rows were joined, kept and read three times, 1.5 s of a
-- PostgreSQL run at 1M rows with no labels); the window's rows per version are one count.
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, model_version, feature, metric,
                                  category, value, threshold, drifted, n_reference, n_current)
WITH counts AS (
    SELECT model_version, CAST(count(*) AS DOUBLE) AS n_rows FROM {window}
    WHERE model_version IS NOT NULL GROUP BY model_version
),
labeled AS MATERIALIZED (
    SELECT v.model_version, CAST(v.prediction AS DOUBLE) AS predicted, CAST(g.label AS DOUBLE) AS actual,
           epoch(g.observed_at) - epoch(v.scored_at) AS delay
    FROM {window} AS v JOIN ({labels}) AS g ON g.id = v.id
    WHERE v.model_version IS NOT NULL AND g.label IS NOT NULL
),
means AS (SELECT model_version, avg(actual) AS mean_label FROM labeled GROUP BY model_version),
errors AS (
    SELECT a.model_version, CAST(count(*) AS DOUBLE) AS n,
           avg(abs(a.actual - a.predicted)) AS mae,
           sqrt(avg((a.actual - a.predicted) * (a.actual - a.predicted))) AS rmse,
           1 - sum((a.actual - a.predicted) * (a.actual - a.predicted))
               / nullif(sum((a.actual - m.mean_label) * (a.actual - m.mean_label)), 0) AS r2,
           avg(abs(a.actual - a.predicted) / greatest(abs(a.actual), 2.220446049250313e-16)) AS mape,
           avg(a.delay) AS delay
    FROM labeled AS a JOIN means AS m ON m.model_version = a.model_version GROUP BY a.model_version
),
summary AS MATERIALIZED (
    SELECT c.model_version, c.n_rows, coalesce(e.n, 0) AS n, e.mae, e.rmse, e.r2, e.mape, e.delay
    FROM counts AS c LEFT JOIN errors AS e ON e.model_version = c.model_version
),
metrics AS (
    SELECT model_version, 'mae' AS metric, CAST(NULL AS VARCHAR) AS category, mae AS value FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'rmse', NULL, rmse FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'r2', NULL, r2 FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'mape', NULL, mape FROM summary WHERE n > 0
    UNION ALL SELECT model_version, 'labeled_rows', NULL, n FROM summary
    UNION ALL SELECT model_version, 'rows', NULL, n_rows FROM summary
    UNION ALL SELECT model_version, 'labeled_share', NULL, n / n_rows FROM summary
    UNION ALL SELECT model_version, 'label_delay_seconds', NULL, delay FROM summary WHERE n > 0
)
{insert_tail};

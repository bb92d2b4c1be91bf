-- Fairness and global importance: statements a monitor runs per window ($1 monitor, $2 run id,
-- $3 window start, $4 window end), stored with it like sql/monitoring.sql's, and what
-- create_monitor stores once (the favorable outcome, the reference importance).
-- {slots} take only identifiers quoted by indb.identifiers and fragments built from them.

-- name: insert_favorable
-- The favorable outcome (a class label as CAST(label AS VARCHAR) writes it), read by the
-- stored statements instead of being written into their text.
INSERT INTO indb.monitor_bins (monitor, feature, grid, bin, lower, category, n)
VALUES ($monitor, 'prediction', 'favorable', 0, NULL, $category, 0);

-- name: fairness
-- Per model version and group of one protected attribute ({group}: the window row v's
-- column, or its entity's value in a feature set as of scoring time; NULL is a group of its
-- own): rows, selection rate (share predicted favorable, over every row of the window), and
-- over rows whose label arrived: true and false positive rates and precision, NULL where
-- undefined (no positives, no negatives, nothing selected). Summary metrics over the groups
-- where a rate is defined: demographic parity difference (max - min selection rate) and ratio
-- (min / max), equal opportunity difference (max - min TPR), equalized odds difference
-- (the larger of the TPR and FPR differences), as fairlearn defines them.
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, model_version, feature, metric,
                                  category, value, threshold, drifted, n_reference, n_current)
WITH fav AS (
    SELECT max(category) AS favorable FROM indb.monitor_bins
    WHERE monitor = $1 AND feature = 'prediction' AND grid = 'favorable'
),
scored AS MATERIALIZED (
    SELECT v.model_version, {group} AS grp,
           CASE WHEN CAST(v.prediction AS VARCHAR) = fav.favorable THEN 1 ELSE 0 END AS selected,
           CASE WHEN g.label IS NULL THEN NULL
                WHEN CAST(g.label AS VARCHAR) = fav.favorable THEN 1 ELSE 0 END AS positive
    FROM {window} AS v CROSS JOIN fav LEFT JOIN ({labels}) AS g ON g.id = v.id
    WHERE v.model_version IS NOT NULL
),
groups AS MATERIALIZED (
    SELECT model_version, grp, CAST(count(*) AS DOUBLE) AS n, CAST(count(positive) AS DOUBLE) AS labeled,
           CAST(sum(selected) AS DOUBLE) / count(*) AS selection_rate,
           CAST(sum(CASE WHEN positive = 1 THEN selected END) AS DOUBLE)
               / nullif(sum(CASE WHEN positive = 1 THEN 1 ELSE 0 END), 0) AS tpr,
           CAST(sum(CASE WHEN positive = 0 THEN selected END) AS DOUBLE)
               / nullif(sum(CASE WHEN positive = 0 THEN 1 ELSE 0 END), 0) AS fpr,
           CAST(sum(CASE WHEN positive = 1 THEN selected ELSE 0 END) AS DOUBLE)
               / nullif(sum(CASE WHEN positive IS NOT NULL THEN selected ELSE 0 END), 0) AS precision
    FROM scored GROUP BY model_version, grp
),
summary AS MATERIALIZED (
    SELECT model_version, CAST(sum(n) AS DOUBLE) AS n,
           max(selection_rate) - min(selection_rate) AS dp_difference,
           min(selection_rate) / nullif(max(selection_rate), 0) AS dp_ratio,
           max(tpr) - min(tpr) AS tpr_difference, max(fpr) - min(fpr) AS fpr_difference
    FROM groups GROUP BY model_version
),
metrics AS (
    SELECT model_version, 'group_rows' AS metric, grp AS category, n AS value, n AS rows_in FROM groups
    UNION ALL SELECT model_version, 'group_labeled_rows', grp, labeled, n FROM groups
    UNION ALL SELECT model_version, 'group_selection_rate', grp, selection_rate, n FROM groups
    UNION ALL SELECT model_version, 'group_true_positive_rate', grp, tpr, n FROM groups
    UNION ALL SELECT model_version, 'group_false_positive_rate', grp, fpr, n FROM groups
    UNION ALL SELECT model_version, 'group_precision', grp, precision, n FROM groups
    UNION ALL SELECT model_version, 'demographic_parity_difference', NULL, dp_difference, n FROM summary
    UNION ALL SELECT model_version, 'demographic_parity_ratio', NULL, dp_ratio, n FROM summary
    UNION ALL SELECT model_version, 'equal_opportunity_difference', NULL, tpr_difference, n FROM summary
    UNION ALL SELECT model_version, 'equalized_odds_difference', NULL,
                     CASE WHEN tpr_difference IS NULL OR fpr_difference IS NULL THEN NULL
                          WHEN tpr_difference >= fpr_difference THEN tpr_difference
                          ELSE fpr_difference END, n FROM summary
)
SELECT $2, $1, $3, $4, m.model_version, {name}, m.metric, m.category, m.value, t.threshold,
       CASE WHEN m.value IS NULL OR t.threshold IS NULL THEN NULL
            WHEN t.direction = 'below' THEN m.value < t.threshold
            ELSE m.value >= t.threshold END,
       NULL, CAST(m.rows_in AS BIGINT)
FROM metrics AS m
LEFT JOIN indb.monitor_thresholds AS t
    ON m.category IS NULL AND t.monitor = $1 AND t.feature = {name} AND t.metric = m.metric;

-- name: reference_importance
-- Global importance of the reference rows (mean |contribution| per feature, as SageMaker
-- Clarify's mean_abs), from the explanations of the reference's ids; rank 1 = largest
-- (ties by feature name).
INSERT INTO indb.monitor_bins (monitor, feature, grid, bin, lower, category, n)
SELECT $monitor, feature, 'importance',
       CAST(row_number() OVER (ORDER BY importance DESC, feature) AS INTEGER), importance, NULL, n
FROM (
    SELECT x.feature, avg(abs(x.contribution)) AS importance, count(*) AS n
    FROM {explanations} AS x WHERE x.id IN (SELECT id FROM {temp}) GROUP BY x.feature
) AS s;

-- name: reference_importance_rows
SELECT count(*) FROM indb.monitor_bins WHERE monitor = $monitor AND grid = 'importance';

-- name: importance
-- Per model version: each feature's mean |contribution| over the window's explained rows, its
-- share of the total (normalized importance), rank, and share minus the reference's share;
-- then attribution drift against the reference as SageMaker Clarify defines it, nDCG of the
-- window's ranking scored by the reference's importance a(f):
--   DCG = sum_i a(F_i) / log2(i + 1), F = features by the window's importance,
--   iDCG = the same sum over the reference's own order; nDCG = DCG / iDCG (1: same order);
-- and attribution_shift = half the L1 distance between normalized importances (0..1).
-- Features missing on one side count as importance 0 there; ties are ordered by name.
INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, model_version, feature, metric,
                                  category, value, threshold, drifted, n_reference, n_current)
WITH live AS MATERIALIZED (
    SELECT v.model_version, x.feature, avg(abs(x.contribution)) AS importance, count(*) AS n
    FROM {window} AS v JOIN {explanations} AS x ON x.id = v.id
    WHERE v.model_version IS NOT NULL
    GROUP BY v.model_version, x.feature
),
ref AS (
    SELECT feature, lower AS importance, n FROM indb.monitor_bins WHERE monitor = $1 AND grid = 'importance'
),
versions AS (SELECT model_version, max(n) AS n FROM live GROUP BY model_version),
everything AS (
    SELECT w.model_version, f.feature, coalesce(l.importance, 0) AS importance,
           coalesce(r.importance, 0) AS ref_importance, w.n
    FROM versions AS w
    CROSS JOIN (SELECT feature FROM ref UNION SELECT feature FROM live) AS f
    LEFT JOIN live AS l ON l.model_version = w.model_version AND l.feature = f.feature
    LEFT JOIN ref AS r ON r.feature = f.feature
),
ranked AS MATERIALIZED (
    SELECT e.*,
           e.importance / nullif(sum(e.importance) OVER (PARTITION BY e.model_version), 0) AS share,
           e.ref_importance / nullif(sum(e.ref_importance) OVER (PARTITION BY e.model_version), 0) AS ref_share,
           row_number() OVER (PARTITION BY e.model_version ORDER BY e.importance DESC, e.feature) AS live_rank,
           row_number() OVER (PARTITION BY e.model_version ORDER BY e.ref_importance DESC, e.feature) AS ref_rank
    FROM everything AS e
),
drift AS (
    SELECT model_version, max(n) AS n,
           sum(ref_importance / (ln(live_rank + 1) / ln(2)))
               / nullif(sum(ref_importance / (ln(ref_rank + 1) / ln(2))), 0) AS ndcg,
           sum(abs(share - ref_share)) / 2 AS shift
    FROM ranked GROUP BY model_version
),
metrics AS (
    SELECT model_version, feature, 'importance' AS metric, importance AS value, n FROM ranked
    UNION ALL SELECT model_version, feature, 'importance_share', share, n FROM ranked
    UNION ALL SELECT model_version, feature, 'importance_rank', CAST(live_rank AS DOUBLE), n FROM ranked
    UNION ALL SELECT model_version, feature, 'importance_share_change', share - ref_share, n FROM ranked
    UNION ALL SELECT model_version, '*', 'attribution_ndcg', ndcg, n FROM drift
    UNION ALL SELECT model_version, '*', 'attribution_shift', shift, n FROM drift
)
SELECT $2, $1, $3, $4, m.model_version, m.feature, m.metric, NULL, m.value, t.threshold,
       CASE WHEN m.value IS NULL OR t.threshold IS NULL THEN NULL
            WHEN t.direction = 'below' THEN m.value < t.threshold
            ELSE m.value >= t.threshold END,
       NULL, CAST(m.n AS BIGINT)
FROM metrics AS m
LEFT JOIN indb.monitor_thresholds AS t ON t.monitor = $1 AND t.feature = m.feature AND t.metric = m.metric;

-- name: report_importance
SELECT window_start, model_version, feature, value FROM indb.monitor_results
WHERE monitor = $monitor AND metric = 'importance' ORDER BY window_start, model_version, value DESC;

-- name: report_reference_importance
SELECT feature, lower AS importance, bin AS rank FROM indb.monitor_bins
WHERE monitor = $monitor AND grid = 'importance' ORDER BY bin;

-- name: deployment_features
-- What a features_from deployment scores from (feature sets and versions), or NULL.
SELECT features FROM indb.deployments WHERE table_name = $table;

-- The model card (issue 14.5): what indb.governance.card reads from the catalog for one model
-- version, and how db.document_model writes the free-text fields on a single-user database
-- (PostgreSQL: the function of sql/postgres/model_card.sql).

-- name: model
SELECT name, description, created_by, created_at FROM indb.models WHERE name = $model;

-- name: versions
SELECT version, stage FROM indb.model_versions WHERE model = $model ORDER BY version;

-- name: aliases
SELECT alias FROM indb.model_aliases WHERE model = $model AND version = $version ORDER BY alias;

-- name: documentation
-- The model's row (version NULL) first, then the version's, which overrides it field by field.
SELECT version, purpose, intended_use, limitations, ethical_considerations, updated_by, updated_at
FROM indb.model_documentation
WHERE model = $model AND (version IS NULL OR version = $version)
ORDER BY version NULLS FIRST;

-- name: documentation_row
SELECT purpose, intended_use, limitations, ethical_considerations FROM indb.model_documentation
WHERE model = $model AND coalesce(version, -1) = $version;

-- name: delete_documentation
DELETE FROM indb.model_documentation WHERE model = $model AND coalesce(version, -1) = $version;

-- name: insert_documentation
INSERT INTO indb.model_documentation
    (model, version, purpose, intended_use, limitations, ethical_considerations, updated_by)
VALUES ($model, $version, $purpose, $intended_use, $limitations, $ethical_considerations, $user);

-- name: training_run
-- The succeeded training run that registered the version (NULL columns when there is none).
SELECT id, parent_version, training_set, training_set_version, cutoff, rows, holdout,
       fit_seconds, triggered_by, started_at, finished_at
FROM indb.training_runs
WHERE model = $model AND version = $version AND status = 'succeeded'
ORDER BY id DESC LIMIT 1;

-- name: run_metrics
-- Holdout metrics of the version in every training run that evaluated it, newest run first.
SELECT run_id, role, metric, value FROM indb.training_run_metrics
WHERE model = $model AND version = $version ORDER BY run_id DESC, metric;

-- name: leaderboard
-- The version's rank per metric on the model's latest holdout, of how many versions.
SELECT l.metric, l.value, l.rank, l.better, l.run_id,
       (SELECT count(*) FROM indb.leaderboard AS o WHERE o.model = l.model AND o.metric = l.metric) AS ranked
FROM indb.leaderboard AS l
WHERE l.model = $model AND l.version = $version
ORDER BY l.metric;

-- name: registered_training_set
-- A version registered with training_set= (no training run).
SELECT training_set, training_set_version FROM indb.model_training_sets
WHERE model = $model AND version = $version;

-- name: training_set
SELECT name, version, table_name, label, cutoff, row_count, content_hash, created_at
FROM indb.training_sets WHERE name = $name AND version = $version;

-- name: training_set_features
SELECT feature_set, feature_set_version, CAST(features AS VARCHAR) AS features
FROM indb.training_set_features WHERE training_set = $name AND version = $version
ORDER BY feature_set;

-- name: statistics
SELECT feature, data_type, kind, count, nulls, distinct_count, min, max, mean, stddev
FROM indb.feature_statistics
WHERE scope = $scope AND name = $name AND version = $version
ORDER BY feature;

-- name: deployments
-- Deployments serving the version now, and those that served it before (deployment_history).
SELECT d.table_name AS deployment, d.runtime,
       coalesce((SELECT max(h.switched_at) FROM indb.deployment_history AS h
                 WHERE h.deployment = d.table_name AND h.model = d.model AND h.version = d.version),
                d.created_at) AS since,
       true AS current
FROM indb.deployments AS d WHERE d.model = $model AND d.version = $version
UNION ALL
SELECT h.deployment, h.runtime, h.switched_at, false
FROM indb.deployment_history AS h
WHERE h.model = $model AND h.version = $version
  AND NOT EXISTS (SELECT 1 FROM indb.deployments AS d
                  WHERE d.table_name = h.deployment AND d.model = h.model AND d.version = h.version)
ORDER BY 1, 3;

-- name: monitors
SELECT name, deployment, window_size, mode, n_reference, last_run_at FROM indb.monitors
WHERE deployment IN (SELECT table_name FROM indb.deployments WHERE model = $model AND version = $version
                     UNION SELECT deployment FROM indb.deployment_history
                     WHERE model = $model AND version = $version)
ORDER BY name;

-- name: monitor_results
-- Drift (model_version NULL) and the version's own quality, per window.
SELECT window_start, model_version, feature, metric, value, threshold, drifted, n_current
FROM indb.monitor_results
WHERE monitor = $monitor AND category IS NULL AND (model_version IS NULL OR model_version = $version)
ORDER BY window_start, feature, metric;

-- name: monitor_features
SELECT feature, kind FROM indb.monitor_features WHERE monitor = $monitor ORDER BY feature;

-- name: open_alerts
SELECT id, window_start, feature, metric, value, threshold, status FROM indb.alerts
WHERE monitor = $monitor AND status <> 'resolved' AND (model_version IS NULL OR model_version = $version)
ORDER BY id;

-- name: humility_rules
SELECT deployment, name, kind, feature, low, high, action, override FROM indb.humility_rules
WHERE deployment IN (SELECT table_name FROM indb.deployments WHERE model = $model AND version = $version)
ORDER BY deployment, name;

-- name: humility_events
SELECT deployment, rule, count(*) AS events FROM indb.humility_events
WHERE deployment IN (SELECT table_name FROM indb.deployments WHERE model = $model AND version = $version)
GROUP BY deployment, rule ORDER BY deployment, rule;

-- name: stage_requests
SELECT id, to_stage, reason, requested_by, status, created_at, decided_at FROM indb.stage_requests
WHERE model = $model AND version = $version ORDER BY id;

-- name: stage_approvals
SELECT a.request_id, a.approver, a.decision, a.comment, a.decided_at
FROM indb.stage_approvals AS a JOIN indb.stage_requests AS r ON r.id = a.request_id
WHERE r.model = $model AND r.version = $version ORDER BY a.decided_at, a.request_id, a.approver;

-- name: audit_trail
-- Changes to the model, to this version (written "name vN" or "name@N") and to the
-- deployments that serve or served it, oldest first.
SELECT id, logged_at, actor, action, object, CAST(details AS VARCHAR) AS details FROM indb.audit_log
WHERE object IN ($model, $model_v, $model_at)
   OR object IN (SELECT table_name FROM indb.deployments WHERE model = $model AND version = $version
                 UNION SELECT deployment FROM indb.deployment_history
                 WHERE model = $model AND version = $version)
ORDER BY id;

-- name: importance_results
-- Global importance and attribution drift (create_monitor(..., importance=True):
-- indb.monitoring.importance) of the version, per window.
SELECT window_start, feature, metric, value, threshold, drifted, n_current FROM indb.monitor_results
WHERE monitor = $monitor AND (model_version IS NULL OR model_version = $version)
  AND metric IN ('importance', 'importance_share', 'importance_rank', 'importance_share_change',
                 'attribution_ndcg', 'attribution_shift')
ORDER BY window_start, feature, metric;

-- name: fairness_results
-- Group fairness (create_monitor(..., protected=, favorable=): indb.monitoring.fairness) of the
-- version, per window and protected attribute (feature); group rows carry the group in category.
SELECT window_start, feature, metric, category, value, threshold, drifted, n_current FROM indb.monitor_results
WHERE monitor = $monitor AND (model_version IS NULL OR model_version = $version)
  AND metric IN ('demographic_parity_difference', 'demographic_parity_ratio',
                 'equal_opportunity_difference', 'equalized_odds_difference',
                 'group_rows', 'group_labeled_rows', 'group_selection_rate',
                 'group_true_positive_rate', 'group_false_positive_rate', 'group_precision')
ORDER BY window_start, feature, metric, category;

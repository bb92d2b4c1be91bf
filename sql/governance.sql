-- Stages and promotion requests (issue 14.1). DuckDB runs these from the Python API
-- (indb.governance.stages); PostgreSQL calls the functions of sql/postgres/governance.sql.

-- name: set_policy
INSERT INTO indb.stage_policies (model, approvals, approver_role, require_checks, updated_by)
VALUES ($model, $approvals, $approver_role, CAST($checks AS JSON), $user)
ON CONFLICT (model) DO UPDATE SET approvals = excluded.approvals, approver_role = excluded.approver_role,
    require_checks = excluded.require_checks, updated_by = excluded.updated_by,
    updated_at = excluded.updated_at;

-- name: models
SELECT name FROM indb.models ORDER BY name;

-- name: policy
SELECT approvals, approver_role, CAST(require_checks AS VARCHAR) FROM indb.stage_policies WHERE model = $model;

-- name: policy_row
SELECT approvals, approver_role, CAST(require_checks AS VARCHAR), updated_by, updated_at
FROM indb.stage_policies WHERE model = $model;

-- name: stages
SELECT version, stage FROM indb.model_versions WHERE model = $model ORDER BY version;

-- name: version_exists
SELECT count(*) FROM indb.model_versions WHERE model = $model AND version = $version;

-- name: version_metrics
SELECT CAST(metrics AS VARCHAR) FROM indb.model_versions WHERE model = $model AND version = $version;

-- name: open_alerts
SELECT count(*) FROM indb.alerts AS a
JOIN indb.monitors AS mo ON mo.name = a.monitor
JOIN indb.deployments AS d ON d.table_name = mo.deployment
WHERE a.status = 'open' AND d.model = $model AND coalesce(a.model_version, d.version) = $version;

-- name: insert_request
INSERT INTO indb.stage_requests (model, version, to_stage, reason, requested_by, deployment, evidence)
VALUES ($model, $version, $to_stage, $reason, $user, $deployment, CAST($evidence AS JSON)) RETURNING id;

-- name: request
SELECT model, version, to_stage, requested_by, status, deployment FROM indb.stage_requests WHERE id = $request;

-- name: deployment_of_model
SELECT count(*) FROM indb.deployments WHERE table_name = $table AND model = $model;

-- name: deployment_runs
SELECT count(*) FROM indb.deployments WHERE table_name = $table AND model = $model AND version = $version;

-- name: may_switch
-- Whether this session may switch the deployment on $table (one user, one file: yes).
SELECT count(*) > 0 FROM indb.deployments WHERE table_name = $table;

-- name: pending_request
-- The stage request still deciding (or decided, switch pending) a version for a deployment.
SELECT id FROM indb.stage_requests
WHERE model = $model AND version = $version AND deployment = $deployment AND status IN ('open', 'approved')
ORDER BY id;

-- name: approve_promotion_requests
-- The deployment's promotion requests decided by this stage request are approved with it.
UPDATE indb.promotion_requests
SET status = 'approved', decided_by = $user, decided_at = (current_timestamp AT TIME ZONE 'UTC')
WHERE stage_request = $request AND status = 'open';

-- name: reject_promotion_requests
UPDATE indb.promotion_requests
SET status = 'rejected', decided_by = $user, decided_at = (current_timestamp AT TIME ZONE 'UTC')
WHERE stage_request = $request AND status = 'open';

-- name: complete_requests
-- After a switch (same transaction): approved requests whose deployment now runs their version.
UPDATE indb.stage_requests SET status = 'done', decided_at = (current_timestamp AT TIME ZONE 'UTC')
WHERE status = 'approved' AND deployment = $deployment
  AND EXISTS (SELECT 1 FROM indb.deployments AS d
              WHERE d.table_name = $deployment AND d.model = stage_requests.model
                AND d.version = stage_requests.version);

-- name: approved_requests
-- The newest approved request of a deployment whose switch is pending.
SELECT id, version FROM indb.stage_requests
WHERE deployment = $deployment AND status = 'approved' ORDER BY id DESC LIMIT 1;

-- name: already_decided
SELECT count(*) FROM indb.stage_approvals WHERE request_id = $request AND approver = $user;

-- name: insert_decision
INSERT INTO indb.stage_approvals (request_id, approver, decision, comment)
VALUES ($request, $user, $decision, $comment);

-- name: count_approvals
SELECT count(DISTINCT approver) FROM indb.stage_approvals
WHERE request_id = $request AND decision = 'approve' AND approver <> $requester;

-- name: set_request_status
UPDATE indb.stage_requests SET status = $status, decided_at = (current_timestamp AT TIME ZONE 'UTC')
WHERE id = $request;

-- name: archive_production
UPDATE indb.model_versions SET stage = 'archived'
WHERE model = $model AND stage = 'production' AND version <> $version;

-- name: set_stage
UPDATE indb.model_versions SET stage = $stage WHERE model = $model AND version = $version;

-- name: requests
SELECT id, model, version, to_stage, reason, requested_by, status, created_at, decided_at, deployment
FROM indb.stage_requests WHERE model = $model ORDER BY id;

-- name: required_stage
SELECT d.required_stage, v.stage FROM indb.deployments AS d
LEFT JOIN indb.model_versions AS v ON v.model = $model AND v.version = $version
WHERE d.table_name = $table;

-- name: require_stage
UPDATE indb.deployments SET required_stage = $stage WHERE table_name = $table;

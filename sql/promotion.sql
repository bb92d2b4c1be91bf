-- Promotion and rollback of a deployment's champion (indb.lifecycle.promotion).

-- name: history
SELECT deployment, model, version, runtime, switched_at, switched_by, reason, evidence
FROM indb.deployment_history WHERE deployment = $deployment ORDER BY id DESC;

-- name: record_champion
-- The deployment's champion as indb.deployments has it now (after the switch, in its transaction).
INSERT INTO indb.deployment_history (deployment, model, version, runtime, switched_by, reason, evidence)
SELECT table_name, model, version, runtime, $switched_by, $reason, $evidence
FROM indb.deployments WHERE table_name = $deployment;

-- name: open_request
INSERT INTO indb.promotion_requests (deployment, model, version, requested_by, reason, evidence, stage_request)
VALUES ($deployment, $model, $version, $requested_by, $reason, $evidence, $stage_request)
RETURNING id;

-- name: pending_request
SELECT id FROM indb.promotion_requests
WHERE deployment = $deployment AND version = $version AND status IN ('open', 'approved')
ORDER BY id;

-- name: complete_requests
-- The switch done, the requests for it are too (whoever approved them stays recorded).
UPDATE indb.promotion_requests
SET status = 'done', decided_by = coalesce(decided_by, $decided_by),
    decided_at = coalesce(decided_at, current_timestamp AT TIME ZONE 'UTC')
WHERE deployment = $deployment AND version = $version AND status IN ('open', 'approved');

-- name: list_requests
SELECT id, deployment, model, version, status, requested_by, reason, evidence, created_at, decided_by, decided_at,
       stage_request
FROM indb.promotion_requests ORDER BY id;

-- name: list_history
SELECT deployment, model, version, runtime, switched_at, switched_by, reason, evidence
FROM indb.deployment_history WHERE deployment = $deployment ORDER BY id;

-- name: request_stage_request
SELECT stage_request FROM indb.promotion_requests WHERE id = $request;

-- Promotion and rollback of a deployment's champion (indb.lifecycle.promotion).

-- name: history
SELECT deployment, model, version, runtime, switched_at, switched_by, reason, evidence
FROM indb.deployment_history WHERE deployment = $deployment ORDER BY switched_at DESC;

-- name: record_champion
-- The deployment's champion as indb.deployments has it now. switched_at is the deployment's
-- updated_at, which the switch in the same transaction has just set (one clock for both),
-- but never before the latest recorded switch: updated_at is when the transaction began, and
-- a switch that began earlier may have waited for the deployment's lock behind this one's
-- predecessor. Run after the switch took that lock, so the latest row is committed.
INSERT INTO indb.deployment_history (deployment, model, version, runtime, switched_at, switched_by, reason, evidence)
SELECT d.table_name, d.model, d.version, d.runtime,
       greatest(d.updated_at, coalesce((SELECT max(h.switched_at) + INTERVAL '1 microsecond'
                                         FROM indb.deployment_history AS h
                                         WHERE h.deployment = d.table_name), d.updated_at)),
       $switched_by, $reason, $evidence
FROM indb.deployments AS d WHERE d.table_name = $deployment;

-- name: remove_challenger
-- A promoted challenger is the champion now, no longer a challenger.
DELETE FROM indb.challengers WHERE deployment = $deployment AND version = $version;

-- name: open_request
INSERT INTO indb.promotion_requests (deployment, model, version, requested_by, reason, evidence)
VALUES ($deployment, $model, $version, $requested_by, $reason, $evidence)
RETURNING id;

-- name: pending_request
SELECT id FROM indb.promotion_requests
WHERE deployment = $deployment AND version = $version AND status IN ('open', 'approved')
ORDER BY id;

-- name: complete_requests
-- The switch done, the requests for it are too (whoever approved them stays recorded).
UPDATE indb.promotion_requests
SET status = 'done', decided_by = coalesce(decided_by, $decided_by),
    decided_at = coalesce(decided_at, current_timestamp)
WHERE deployment = $deployment AND version = $version AND status IN ('open', 'approved');

-- name: list_requests
SELECT id, deployment, model, version, status, requested_by, reason, evidence, created_at, decided_by, decided_at
FROM indb.promotion_requests ORDER BY id;

-- name: list_history
SELECT deployment, model, version, runtime, switched_at, switched_by, reason, evidence
FROM indb.deployment_history WHERE deployment = $deployment ORDER BY switched_at;

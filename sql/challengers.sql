-- Challengers of a deployment (indb.lifecycle.challengers) and the deployment history.

-- name: list_challengers
SELECT deployment, model, version, mode, weight, runtime, bucket_low, bucket_high, content_hash,
       added_at, added_by
FROM indb.challengers WHERE deployment = $deployment ORDER BY added_at, version;

-- name: delete_other_challengers
DELETE FROM indb.challengers WHERE deployment = $deployment AND NOT (version = ANY($versions));

-- name: delete_challengers
DELETE FROM indb.challengers WHERE deployment = $deployment;

-- name: insert_challenger
-- A challenger that stays keeps its row (added_at, added_by); its runtime and content hash are
-- the ones the switch chose.
INSERT INTO indb.challengers (deployment, model, version, mode, weight, runtime, content_hash,
                              bucket_low, bucket_high, added_by)
VALUES ($deployment, $model, $version, $mode, $weight, $runtime, $content_hash, $bucket_low,
        $bucket_high, $added_by)
ON CONFLICT (deployment, version) DO UPDATE SET runtime = excluded.runtime, content_hash = excluded.content_hash;

-- name: insert_history
INSERT INTO indb.deployment_history (deployment, model, version, runtime, switched_by, reason, evidence)
VALUES ($deployment, $model, $version, $runtime, $switched_by, $reason, $evidence);

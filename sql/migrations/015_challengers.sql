-- Challengers and deployment history (issue 13.4). A challenger is another version of the
-- deployed model scored in the same insert statement as the champion: 'shadow' scores every
-- row into <table>_predictions with role 'challenger' and served false; 'split' serves the
-- request ids whose bucket (indb.lifecycle.challengers.bucket: an integer hash of id, the same
-- in every backend) lies in [bucket_low, bucket_high) out of 10000, and the champion does not
-- score them. Prediction tables get role and served when a deployment is next deployed
-- (indb.deployments.deploy), since a migration cannot loop over tables on every backend.
CREATE TABLE IF NOT EXISTS indb.challengers (
    deployment   VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    mode         VARCHAR NOT NULL,
    weight       DOUBLE NOT NULL,
    runtime      VARCHAR NOT NULL,
    content_hash VARCHAR,
    bucket_low   INTEGER,
    bucket_high  INTEGER,
    added_at     TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    added_by     VARCHAR NOT NULL,
    PRIMARY KEY (deployment, version),
    CHECK (mode IN ('shadow', 'split')),
    CHECK (weight >= 0 AND weight <= 1),
    CHECK (runtime IN ('sql', 'onnx'))
);
COMMENT ON TABLE indb.challengers IS 'Other versions of a deployed model scored in the same insert as the champion: shadow (every row, role challenger, served false) or split (request ids whose bucket is in [bucket_low, bucket_high) of 10000 are served by the challenger). Written by add_challenger / remove_challenger, which switch the deployment.';

CREATE SEQUENCE IF NOT EXISTS indb.deployment_history_id;
CREATE TABLE IF NOT EXISTS indb.deployment_history (
    id           BIGINT NOT NULL DEFAULT nextval('indb.deployment_history_id') PRIMARY KEY,
    deployment   VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    runtime      VARCHAR NOT NULL,
    switched_at  TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    switched_by  VARCHAR NOT NULL,
    reason       VARCHAR NOT NULL,
    evidence     JSON
);
COMMENT ON TABLE indb.deployment_history IS 'One row each time a deployment is created or switched to a version (deploy, promote, rollback): the champion from switched_at on, who switched it, why, and the evidence.';

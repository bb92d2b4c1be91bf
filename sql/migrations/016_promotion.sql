-- Comparison and promotion (issue 13.5): every evaluation of a deployment's challengers and
-- promotion requests (the champion switches are indb.deployment_history, migration 015).

CREATE SEQUENCE IF NOT EXISTS indb.challenger_evaluation_id;
CREATE TABLE IF NOT EXISTS indb.challenger_comparisons (
    evaluation_id    BIGINT NOT NULL,
    deployment       VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    champion_version INTEGER NOT NULL,
    window_name      VARCHAR NOT NULL,
    window_start     TIMESTAMP,
    version          INTEGER NOT NULL,
    role             VARCHAR NOT NULL,
    mode             VARCHAR NOT NULL,
    metric           VARCHAR NOT NULL,
    labeled_rows     BIGINT NOT NULL,
    value            DOUBLE,
    champion_value   DOUBLE,
    difference       DOUBLE,
    ci_low           DOUBLE,
    ci_high          DOUBLE,
    p_value          DOUBLE,
    confidence       DOUBLE NOT NULL,
    method           VARCHAR,
    verdict          VARCHAR,
    evaluated_at     TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    CHECK (role IN ('champion', 'challenger')),
    CHECK (mode IN ('champion', 'shadow', 'split')),
    CHECK (verdict IS NULL OR verdict IN ('better', 'worse', 'no difference', 'too few labels'))
);
COMMENT ON TABLE indb.challenger_comparisons IS 'Every evaluation of a deployment''s arms (indb.evaluate_challengers / db.challenger_comparison(store=True)): per window, arm (version, role, mode) and metric, the labeled rows, the value, the champion''s on the same rows (shadow: the same request ids), the difference with its confidence interval and p-value (method: mcnemar_exact, two_proportion_z, paired_bootstrap, bootstrap) and a verdict.';

CREATE INDEX IF NOT EXISTS challenger_comparisons_deployment ON indb.challenger_comparisons (deployment, evaluation_id);

-- The latest evaluation of each deployment.
CREATE OR REPLACE VIEW indb.challenger_comparison AS
SELECT c.* FROM indb.challenger_comparisons AS c
WHERE c.evaluation_id = (SELECT max(x.evaluation_id) FROM indb.challenger_comparisons AS x
                         WHERE x.deployment = c.deployment);
COMMENT ON VIEW indb.challenger_comparison IS 'The latest evaluation of each deployment''s challengers (rows of indb.challenger_comparisons).';

CREATE SEQUENCE IF NOT EXISTS indb.promotion_request_id;
CREATE TABLE IF NOT EXISTS indb.promotion_requests (
    id           BIGINT NOT NULL DEFAULT nextval('indb.promotion_request_id'),
    deployment   VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    requested_by VARCHAR NOT NULL,
    reason       VARCHAR,
    evidence     JSON,
    status       VARCHAR NOT NULL DEFAULT 'open',
    created_at   TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    decided_by   VARCHAR,
    decided_at   TIMESTAMP,
    PRIMARY KEY (id),
    CHECK (status IN ('open', 'approved', 'rejected', 'done'))
);
COMMENT ON TABLE indb.promotion_requests IS 'A challenger a retraining policy with promote = approval found better: open until approved or rejected (governance) or done (db.promote / indb deployments promote switched the deployment to it).';

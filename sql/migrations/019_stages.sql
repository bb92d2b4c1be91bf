-- Stages and promotion requests (issue 14.1): each model version has a stage; moving it takes a
-- request that the model's policy (how many distinct approvers, of which role, which checks)
-- must pass. On PostgreSQL only the SECURITY DEFINER functions of sql/postgres/governance.sql
-- change a stage (no role but the admin may UPDATE the column); on DuckDB the Python API.
-- indb.promotion_requests (016) is per deployment and stays; stages are per model version.

ALTER TABLE indb.model_versions ADD COLUMN stage VARCHAR DEFAULT 'none';
UPDATE indb.model_versions SET stage = 'none' WHERE stage IS NULL;

-- A deployment marked with a stage (db.require_stage: production) takes only versions in it.
ALTER TABLE indb.deployments ADD COLUMN required_stage VARCHAR;

CREATE TABLE IF NOT EXISTS indb.stage_policies (
    model          VARCHAR PRIMARY KEY,
    approvals      INTEGER NOT NULL DEFAULT 2,
    approver_role  VARCHAR,
    require_checks JSON,
    updated_by     VARCHAR NOT NULL,
    updated_at     TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    CHECK (approvals >= 1)
);
COMMENT ON TABLE indb.stage_policies IS 'Per model: how many distinct approvers (never the requester) a stage change needs, the role they must be members of (NULL: indb''s approver role) and the checks (JSON list: {"min_metric": {"roc_auc": 0.8}}, "no_open_drift_alert") that must pass. A model without a row needs one approver and no checks.';

CREATE SEQUENCE IF NOT EXISTS indb.stage_request_id;
CREATE TABLE IF NOT EXISTS indb.stage_requests (
    id           BIGINT NOT NULL DEFAULT nextval('indb.stage_request_id') PRIMARY KEY,
    model        VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    to_stage     VARCHAR NOT NULL,
    reason       VARCHAR,
    requested_by VARCHAR NOT NULL,
    status       VARCHAR NOT NULL DEFAULT 'open',
    created_at   TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    decided_at   TIMESTAMP,
    CHECK (to_stage IN ('none', 'development', 'staging', 'production', 'archived')),
    CHECK (status IN ('open', 'approved', 'rejected', 'done'))
);
COMMENT ON TABLE indb.stage_requests IS 'A request to move a model version to a stage: open until rejected or, once the policy''s approvals are in and its checks pass, done (the stage changed).';

CREATE TABLE IF NOT EXISTS indb.stage_approvals (
    request_id BIGINT NOT NULL,
    approver   VARCHAR NOT NULL,
    decision   VARCHAR NOT NULL,
    comment    VARCHAR,
    decided_at TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    PRIMARY KEY (request_id, approver),
    CHECK (decision IN ('approve', 'reject'))
);
COMMENT ON TABLE indb.stage_approvals IS 'Each approver''s decision on a stage request (one per approver and request).';

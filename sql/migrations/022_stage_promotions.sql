-- One approval flow for stages and deployments (issue 14.1 joined with 13.5): a stage request
-- may carry the deployment it is for (a retraining policy or a challenger evaluation with
-- promote = approval opens one to production). When its approvals are in and its checks pass,
-- the stage changes and the deployment switches to the version in the same transaction when
-- the deciding session may switch it (status done); else the request is left approved (the
-- stage changed, the switch pending) until db.promote / indb deployments promote, or the next
-- evaluate_challengers run by a role that may deploy, switches it.
-- indb.promotion_requests (016) stays: each row now names the stage request that decides it.

ALTER TABLE indb.stage_requests ADD COLUMN deployment VARCHAR;
ALTER TABLE indb.stage_requests ADD COLUMN evidence JSON;
ALTER TABLE indb.promotion_requests ADD COLUMN stage_request BIGINT;

COMMENT ON TABLE indb.stage_requests IS 'A request to move a model version to a stage: open until rejected or, once the policy''s approvals are in and its checks pass, done (the stage changed, and a deployment it names switched to the version) or approved (the stage changed; the switch of its deployment waits for a role that may deploy).';
COMMENT ON TABLE indb.promotion_requests IS 'A challenger or retrained version a retraining policy with promote = approval proposes for a deployment; decided by its stage request (stage_request, indb.stage_requests): approved when that is approved, done when the deployment switched to it (db.promote / indb deployments promote, or the approval itself).';

-- Models as files (issue 14.3): a version registered by `indb models import` remembers where it
-- came from and the lineage its indb-model.json named. The training set itself does not travel
-- (rows of another database, often personal data); lineage, verify and reproduce say so when
-- it is not in this database rather than fail on a missing table.
CREATE TABLE IF NOT EXISTS indb.model_imports (
    model                VARCHAR NOT NULL,
    version              INTEGER NOT NULL,
    source_model         VARCHAR NOT NULL,
    source_version       INTEGER NOT NULL,
    sha256               VARCHAR NOT NULL,
    training_set         VARCHAR,
    training_set_version INTEGER,
    imported_by          VARCHAR NOT NULL,
    imported_at          TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    PRIMARY KEY (model, version)
);
COMMENT ON TABLE indb.model_imports IS 'Versions registered from an exported folder (indb models import): the model and version they were exported as, their sha256, and the training set the export named (which does not travel with it).';

-- Training runs, retraining policies and the leaderboard (the closed loop, issue 13).
-- Every fit indb makes (retraining) is a row of indb.training_runs; the holdout metrics of
-- every version it evaluated are rows of indb.training_run_metrics, which indb.leaderboard
-- ranks. Times are UTC without a zone, as in indb.jobs.

CREATE SEQUENCE IF NOT EXISTS indb.training_run_id;
CREATE TABLE IF NOT EXISTS indb.training_runs (
    id                   BIGINT NOT NULL DEFAULT nextval('indb.training_run_id'),
    model                VARCHAR NOT NULL,
    version              INTEGER,
    parent_version       INTEGER,
    status               VARCHAR NOT NULL,
    recipe               JSON,
    training_set         VARCHAR,
    training_set_version INTEGER,
    cutoff               TIMESTAMP,
    rows                 BIGINT,
    content_hash         VARCHAR,
    holdout              JSON,
    metrics              JSON,
    champion_metrics     JSON,
    fit_seconds          DOUBLE,
    triggered_by         VARCHAR,
    job_run_id           BIGINT,
    notes                JSON,
    started_at           TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    finished_at          TIMESTAMP,
    error                VARCHAR,
    PRIMARY KEY (id),
    CHECK (status IN ('running', 'succeeded', 'failed', 'skipped'))
);
COMMENT ON TABLE indb.training_runs IS 'One row per fit: model, the version it registered (NULL when it failed or was skipped) and its parent (the champion), the recipe, the training set name, version, cutoff, rows and content hash, the holdout, holdout metrics of the new version and of the champion on the same rows, fit time, who or what triggered it, status and error; notes holds e.g. {"promotion": "requested"}.';

CREATE INDEX IF NOT EXISTS training_runs_model ON indb.training_runs (model, id);

CREATE TABLE IF NOT EXISTS indb.training_run_metrics (
    run_id   BIGINT NOT NULL,
    model    VARCHAR NOT NULL,
    version  INTEGER NOT NULL,
    role     VARCHAR NOT NULL,
    metric   VARCHAR NOT NULL,
    value    DOUBLE,
    PRIMARY KEY (run_id, version, metric),
    CHECK (role IN ('candidate', 'champion', 'other'))
);
COMMENT ON TABLE indb.training_run_metrics IS 'Holdout metrics of each version a training run evaluated, one row per metric (long form): the candidate it trained, the champion and the model''s other versions, all on that run''s holdout rows.';

CREATE TABLE IF NOT EXISTS indb.retraining_policies (
    model           VARCHAR PRIMARY KEY,
    training_set    VARCHAR NOT NULL,
    holdout         VARCHAR NOT NULL,
    metric          VARCHAR NOT NULL,
    min_new_labels  BIGINT NOT NULL DEFAULT 0,
    promote         VARCHAR NOT NULL DEFAULT 'manual',
    min_improvement DOUBLE NOT NULL DEFAULT 0,
    min_labels      BIGINT NOT NULL DEFAULT 100,
    confidence      DOUBLE NOT NULL DEFAULT 0.95,
    deployment      VARCHAR,
    job             VARCHAR,
    created_by      VARCHAR NOT NULL,
    created_at      TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC'),
    CHECK (promote IN ('manual', 'approval', 'auto')),
    CHECK (min_new_labels >= 0 AND min_labels >= 0 AND confidence > 0 AND confidence < 1)
);
COMMENT ON TABLE indb.retraining_policies IS 'How a model is retrained: its training set (rebuilt with cutoff = now), the time-based holdout (''20%'' or ''30 days''), the metric that ranks versions, the new labels needed, what happens after (promote: manual, approval, auto = shadow challenger on deployment), the comparison''s min_improvement, min_labels and confidence, and the job that runs it.';

-- Per model, the holdout of its latest succeeded training run: every version evaluated on it,
-- ranked per metric (1 = best; log loss, MAE and RMSE rank lowest first).
CREATE OR REPLACE VIEW indb.leaderboard AS
WITH latest AS (
    SELECT model, max(id) AS run_id FROM indb.training_runs WHERE status = 'succeeded' GROUP BY model
)
SELECT m.model,
       m.version,
       m.metric,
       m.value,
       rank() OVER (PARTITION BY m.model, m.metric
                    ORDER BY CASE WHEN m.metric IN ('log_loss', 'mae', 'rmse') THEN m.value ELSE -m.value END
                    NULLS LAST) AS rank,
       CASE WHEN m.metric IN ('log_loss', 'mae', 'rmse') THEN 'lower' ELSE 'higher' END AS better,
       m.role,
       (SELECT string_agg(a.alias, ',' ORDER BY a.alias) FROM indb.model_aliases AS a
         WHERE a.model = m.model AND a.version = m.version) AS stage,
       EXISTS (SELECT 1 FROM indb.deployments AS d
                WHERE d.model = m.model AND d.version = m.version) AS deployed,
       r.id AS run_id,
       r.training_set,
       r.training_set_version,
       r.holdout
FROM indb.training_run_metrics AS m
JOIN latest AS l ON l.run_id = m.run_id
JOIN indb.training_runs AS r ON r.id = m.run_id;
COMMENT ON VIEW indb.leaderboard IS 'Per model, every version evaluated on the holdout of its latest succeeded training run, one row per metric: value, rank (1 = best), which way is better, stage (the version''s aliases), deployed, and the run and training set that made the holdout.';

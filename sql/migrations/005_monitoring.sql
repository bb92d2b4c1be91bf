-- Monitoring: monitors over a deployment, their reference statistics (computed once), results
-- and alerts of every run, and humility rules checked at scoring time with their events.

CREATE TABLE IF NOT EXISTS indb.monitors (
    name          VARCHAR PRIMARY KEY,
    deployment    VARCHAR NOT NULL,
    schema_name   VARCHAR NOT NULL,
    reference     JSON NOT NULL,
    window_size   VARCHAR NOT NULL,
    window_seconds BIGINT NOT NULL,
    mode          VARCHAR NOT NULL,
    task          VARCHAR NOT NULL,
    classes       JSON,
    probability_columns JSON,
    n_reference   BIGINT NOT NULL,
    created_by    VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    last_run_at   TIMESTAMP,
    last_window   TIMESTAMP
);
COMMENT ON TABLE indb.monitors IS 'Drift and accuracy monitors over a deployment: reference, window length, binned or exact mode.';

CREATE TABLE IF NOT EXISTS indb.monitor_features (
    monitor   VARCHAR NOT NULL,
    feature   VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,
    n         BIGINT NOT NULL,
    missing   BIGINT NOT NULL,
    mean      DOUBLE,
    std       DOUBLE,
    min_value DOUBLE,
    max_value DOUBLE,
    cells     INTEGER,
    PRIMARY KEY (monitor, feature)
);
COMMENT ON TABLE indb.monitor_features IS 'Monitored columns (numeric or categorical) with reference summaries: count, missing, mean, population std, range, fine cells.';

CREATE TABLE IF NOT EXISTS indb.monitor_bins (
    monitor  VARCHAR NOT NULL,
    feature  VARCHAR NOT NULL,
    grid     VARCHAR NOT NULL,
    bin      INTEGER NOT NULL,
    lower    DOUBLE,
    category VARCHAR,
    n        BIGINT NOT NULL
);
COMMENT ON TABLE indb.monitor_bins IS 'Reference histograms: psi = quantile bins (lower edge), cell = equal-width fine cells (binned mode), category = category counts.';

CREATE TABLE IF NOT EXISTS indb.monitor_reference_values (
    monitor VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    value   DOUBLE NOT NULL,
    n       BIGINT NOT NULL
);
COMMENT ON TABLE indb.monitor_reference_values IS 'The sorted reference sample of numeric columns as (distinct value, count): its exact ECDF for KS and Wasserstein.';

CREATE TABLE IF NOT EXISTS indb.monitor_thresholds (
    monitor   VARCHAR NOT NULL,
    feature   VARCHAR NOT NULL,
    metric    VARCHAR NOT NULL,
    threshold DOUBLE NOT NULL,
    direction VARCHAR NOT NULL,
    PRIMARY KEY (monitor, feature, metric)
);
COMMENT ON TABLE indb.monitor_thresholds IS 'Alert thresholds per monitored column and metric; direction above: alert when value >= threshold, below: when value < threshold. Feature * applies to every column.';

CREATE TABLE IF NOT EXISTS indb.monitor_statements (
    monitor   VARCHAR NOT NULL,
    step      INTEGER NOT NULL,
    purpose   VARCHAR NOT NULL,
    statement VARCHAR NOT NULL,
    PRIMARY KEY (monitor, step)
);
COMMENT ON TABLE indb.monitor_statements IS 'The SQL one monitor runs per window ($1 monitor, $2 run id, $3 window start, $4 window end), generated once at creation; indb.run_monitor executes it.';

CREATE SEQUENCE IF NOT EXISTS indb.monitor_run_id;
CREATE TABLE IF NOT EXISTS indb.monitor_results (
    run_id        BIGINT NOT NULL,
    monitor       VARCHAR NOT NULL,
    window_start  TIMESTAMP NOT NULL,
    window_end    TIMESTAMP NOT NULL,
    model_version INTEGER,
    feature       VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    category      VARCHAR,
    value         DOUBLE,
    threshold     DOUBLE,
    drifted       BOOLEAN,
    n_reference   BIGINT,
    n_current     BIGINT,
    computed_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.monitor_results IS 'Every metric of every monitor run: drift per column and window, accuracy per window and model version; drifted when its threshold is crossed.';

CREATE SEQUENCE IF NOT EXISTS indb.alert_id;
CREATE TABLE IF NOT EXISTS indb.alerts (
    id            BIGINT NOT NULL DEFAULT nextval('indb.alert_id'),
    monitor       VARCHAR NOT NULL,
    run_id        BIGINT NOT NULL,
    window_start  TIMESTAMP NOT NULL,
    window_end    TIMESTAMP NOT NULL,
    model_version INTEGER,
    feature       VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    value         DOUBLE,
    threshold     DOUBLE,
    status        VARCHAR NOT NULL DEFAULT 'open',
    opened_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.alerts IS 'One row per monitor, window, column and metric whose threshold was crossed; status open until someone sets it to closed.';

CREATE SEQUENCE IF NOT EXISTS indb.humility_rule_id;
CREATE TABLE IF NOT EXISTS indb.humility_rules (
    id          BIGINT NOT NULL DEFAULT nextval('indb.humility_rule_id'),
    deployment  VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    feature     VARCHAR NOT NULL,
    low         DOUBLE,
    high        DOUBLE,
    action      VARCHAR NOT NULL,
    override    VARCHAR,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (deployment, name)
);
COMMENT ON TABLE indb.humility_rules IS 'Checks at scoring time: outside_range (low..high), unseen_category, uncertain (probability in low..high); action log, override or reject.';

CREATE TABLE IF NOT EXISTS indb.humility_categories (
    deployment VARCHAR NOT NULL,
    rule       VARCHAR NOT NULL,
    category   VARCHAR NOT NULL
);
COMMENT ON TABLE indb.humility_categories IS 'Categories seen in training for unseen_category humility rules.';

CREATE SEQUENCE IF NOT EXISTS indb.humility_event_id;
CREATE TABLE IF NOT EXISTS indb.humility_events (
    id         BIGINT NOT NULL DEFAULT nextval('indb.humility_event_id'),
    deployment VARCHAR NOT NULL,
    rule       VARCHAR NOT NULL,
    row_id     BIGINT NOT NULL,
    feature    VARCHAR NOT NULL,
    value      VARCHAR,
    action     VARCHAR NOT NULL,
    logged_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE indb.humility_events IS 'Rows a humility rule caught at scoring time, with the value and the action taken.';

-- Monitoring, second step: a monitor's window time (time_column) and the two queries that
-- find its windows, stored with it and schema-qualified; alerts that de-duplicate an ongoing
-- condition (first/last seen, count) and are acknowledged or resolved; alert sinks.

ALTER TABLE indb.monitors ADD COLUMN IF NOT EXISTS time_column VARCHAR;
ALTER TABLE indb.monitors ADD COLUMN IF NOT EXISTS windows_sql VARCHAR;
ALTER TABLE indb.monitors ADD COLUMN IF NOT EXISTS relabeled_sql VARCHAR;

ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS first_seen TIMESTAMP;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS last_seen TIMESTAMP;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS seen_count BIGINT DEFAULT 1;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS last_window_start TIMESTAMP;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS acknowledged_at TIMESTAMP;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS acknowledged_by VARCHAR;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS resolved_at TIMESTAMP;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS resolved_by VARCHAR;
ALTER TABLE indb.alerts ADD COLUMN IF NOT EXISTS note VARCHAR;
UPDATE indb.alerts SET first_seen = opened_at, last_seen = opened_at, seen_count = 1,
                       last_window_start = window_start
WHERE first_seen IS NULL;
COMMENT ON TABLE indb.alerts IS 'One alert per ongoing condition (monitor, column, metric, model version over its threshold): first/last seen, windows counted, latest value; status open, acknowledged or resolved (a later crossing then opens a new one).';

CREATE SEQUENCE IF NOT EXISTS indb.alert_sink_id;
CREATE TABLE IF NOT EXISTS indb.alert_sinks (
    id            BIGINT NOT NULL DEFAULT nextval('indb.alert_sink_id'),
    monitor       VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    target        VARCHAR NOT NULL,
    last_alert_id BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (id)
);
COMMENT ON TABLE indb.alert_sinks IS 'Where new alerts of a monitor are sent: webhook (URL, JSON POST), notify (a PostgreSQL NOTIFY channel, sent by indb.run_monitor), command (argv as JSON, alert JSON on stdin); last_alert_id is the last alert sent.';

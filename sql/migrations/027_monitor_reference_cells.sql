-- Exact drift's reference side, computed once when a monitor is created (issue 17): per numeric
-- column and fine equal-width cell over the reference range, the rows, the sum of (value - cell
-- start), the largest value, and the cell's distinct values with their counts (ascending), so
-- that a run reads these instead of grouping the reference sample again, and resolves the few
-- cells it must look into value by value from the lists alone.
CREATE TABLE IF NOT EXISTS indb.monitor_reference_cells (
    monitor VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    cell    BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    s       DOUBLE NOT NULL,
    top     DOUBLE NOT NULL,
    vals    DOUBLE[] NOT NULL,
    counts  BIGINT[] NOT NULL
);
COMMENT ON TABLE indb.monitor_reference_cells IS 'Exact drift: the reference sample per fine equal-width cell (rows, sum of value - cell start, largest value, distinct values and counts), computed at create_monitor.';

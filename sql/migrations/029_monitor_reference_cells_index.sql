-- Exact drift reads one column's reference cells per run (all of them, then the flagged ones'
-- value lists): an index on (monitor, feature, cell) keeps that read to the column's own rows
-- instead of a scan of every monitor's cells (issue 17, second pass: PostgreSQL's exact path
-- now reads these cells too).
CREATE INDEX IF NOT EXISTS monitor_reference_cells_key ON indb.monitor_reference_cells (monitor, feature, cell);

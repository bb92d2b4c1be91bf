-- Trust (issue 10): one content hash per model version, recorded again by each deployment;
-- the schema of each deployed table; a hash chain over the audit log.
-- content_hash = sha256 over the ONNX bytes' sha256, inputs, outputs, classes and recipe as
-- stored (indb.registry.content_hash). A deployment records the hash of the version it
-- deployed, and scoring compares the loaded row with it (not with the row itself).
ALTER TABLE indb.model_versions ADD COLUMN content_hash VARCHAR;
ALTER TABLE indb.deployments ADD COLUMN schema_name VARCHAR;
ALTER TABLE indb.deployments ADD COLUMN content_hash VARCHAR;
-- Each audit row carries the hash of the row before it (prev_hash) and its own (row_hash).
ALTER TABLE indb.audit_log ADD COLUMN prev_hash VARCHAR;
ALTER TABLE indb.audit_log ADD COLUMN row_hash VARCHAR;
-- The chain extends from the latest row: find it by id without a scan.
CREATE INDEX IF NOT EXISTS audit_log_id_idx ON indb.audit_log (id);

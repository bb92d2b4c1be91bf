-- Rows of the registration sample, kept to verify other runtimes (compiled SQL) against
-- onnxruntime before they are used. JSON in pandas' "split" layout.
ALTER TABLE indb.model_versions ADD COLUMN sample JSON;

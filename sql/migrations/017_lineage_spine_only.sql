-- Model lineage keeps models trained on a training set without feature sets (a spine that
-- carries its own features, as retraining over requests joined with their labels uses): one
-- row with NULL feature set instead of none.

CREATE OR REPLACE VIEW indb.model_lineage AS
SELECT m.model, m.version AS model_version, m.training_set, m.training_set_version,
       f.feature_set, f.feature_set_version, f.features
FROM indb.model_training_sets AS m
LEFT JOIN indb.training_set_features AS f
  ON f.training_set = m.training_set AND f.version = m.training_set_version;
COMMENT ON VIEW indb.model_lineage IS 'Model version -> training set version -> feature set versions, one row per feature set (NULL feature set: the training set''s spine held the features).';

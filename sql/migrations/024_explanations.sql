-- Per-prediction explanations (issue 15.1): a deployment made with explain=True writes, in the
-- statement that scores an insert, each request's contributions into <table>_contributions,
-- shown one row per request column by the view <table>_explanations (id, feature,
-- contribution, base, error), so that base + sum(contribution) is the model's raw output
-- (log-odds of the last class for a binary classifier, the value for a regressor).
-- explain_method names how ('linear': exact Shapley values under feature independence, in SQL;
-- other methods as indb.udfs.explain names them); NULL: the deployment writes no explanations.
ALTER TABLE indb.deployments ADD COLUMN explain_method VARCHAR;

-- Deployments score in bulk (a statement trigger writing <table>_predictions) or per row
-- (a row trigger writing the prediction into the inserted row, for INSERT ... RETURNING),
-- and name the probability column of each class of the deployed version.
ALTER TABLE indb.deployments ADD COLUMN mode VARCHAR DEFAULT 'bulk';
ALTER TABLE indb.deployments ADD COLUMN probability_columns JSON;
UPDATE indb.deployments SET mode = 'bulk' WHERE mode IS NULL;

-- A deployment either follows an alias of its model (deployed with version='production', or
-- with no version while the model has a production alias): set_alias then moves it in the
-- same transaction; or it is pinned to its version (alias NULL: deployed by version number,
-- or by default when the model had no production alias) and stays there, with a warning
-- when production moves elsewhere.
ALTER TABLE indb.deployments ADD COLUMN alias VARCHAR;

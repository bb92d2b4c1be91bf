-- PostgreSQL versions of explanation statements.

-- name: create_explain_macro
-- One row's contributions as a set of (feature, contribution) rows: SELECT * FROM indb.explain_m(...).
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS TABLE (feature text, contribution double precision)
LANGUAGE sql STABLE AS {body};

-- name: comment_explain_macro
COMMENT ON FUNCTION {name}({argument_types}) IS {comment};

-- name: create_explain_trigger_function
-- <table>_score_explain of a deployment whose explanations are not SQL (tree ensembles, the
-- sampling explainer): indb.udfs.explain runs in the server's Python next to the champion's
-- onnxruntime session (udfs/plpython_runtime.py, Runtime.explain_statement), with the same
-- checks as the scoring functions (the table that fired it is the deployed one; the version's
-- content hash is the one the deployment recorded). It runs as indb's owner: the application's
-- role inserts requests and never writes <table>_explanations itself.
CREATE OR REPLACE FUNCTION indb.explain_inserted_rows() RETURNS trigger LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
GD["indb_runtime"].explain_statement(TD)
$indb$;

-- name: trigger_function
-- The function a table's trigger calls (none: no such trigger).
SELECT p.proname FROM pg_catalog.pg_trigger AS t JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
WHERE t.tgrelid = pg_catalog.to_regclass($table) AND t.tgname = $trigger AND NOT t.tgisinternal;

-- name: create_explain_python_function
-- One row's contributions of a model explained in Python (trees, sampling): the runtime's
-- explainer for the version whose content hash the body names (udfs/plpython_runtime.py).
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS TABLE (feature text, contribution double precision)
LANGUAGE plpython3u STABLE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS {body};

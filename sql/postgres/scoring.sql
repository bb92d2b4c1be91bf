-- PostgreSQL scoring: models as PL/Python functions over indb's runtime (udfs/plpython_runtime.py),
-- and generic trigger functions that read the deployment once per statement.

-- name: create_plpython
CREATE EXTENSION IF NOT EXISTS plpython3u;

-- name: create_runtime_loader
CREATE OR REPLACE FUNCTION indb.load_runtime() RETURNS void LANGUAGE plpython3u AS {body};

-- name: comment_runtime_loader
COMMENT ON FUNCTION indb.load_runtime() IS {comment};

-- Trigger functions run as their owner (who installed indb): inserting into a deployed table
-- needs INSERT on that table only, not access to models or predictions.

-- name: create_bulk_trigger_function
CREATE OR REPLACE FUNCTION indb.score_inserted_rows() RETURNS trigger LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
GD["indb_runtime"].score_statement(TD)
$indb$;

-- name: create_challenger_trigger_function
-- The onnx challengers of a deployment whose champion is compiled (indb.lifecycle.challengers):
-- the same checks as the champion's function (the table that fired it is the deployed one; each
-- version's content hash is the one its row of indb.challengers recorded).
CREATE OR REPLACE FUNCTION indb.score_challenger_rows() RETURNS trigger LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
GD["indb_runtime"].score_challengers(TD)
$indb$;

-- name: create_row_trigger_function
CREATE OR REPLACE FUNCTION indb.score_inserted_row() RETURNS trigger LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
return GD["indb_runtime"].score_row(TD)
$indb$;

-- name: create_backfill_function
CREATE OR REPLACE FUNCTION indb.score_unscored_rows(table_name text, source text)
RETURNS bigint LANGUAGE plpython3u AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
return GD["indb_runtime"].score_rows(None, table_name, source)
$indb$;

-- Model functions are PARALLEL UNSAFE (the default): loading a model runs a query, and
-- PL/Python runs queries in subtransactions, which no process may start during a parallel
-- query, the leader included. They run as indb's owner (callers need EXECUTE only, not
-- access to indb.model_versions) and load only the content their body names.

-- name: create_model_function
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS {return_type}
LANGUAGE plpython3u STABLE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS {body};

-- name: create_default_function
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS {return_type}
LANGUAGE sql STABLE PARALLEL UNSAFE AS {body};

-- name: comment_function
COMMENT ON FUNCTION {name}({argument_types}) IS {comment};

-- name: drop_function
DROP FUNCTION IF EXISTS {signature};

-- name: backfill
SELECT indb.score_unscored_rows({table_literal}, {source});

-- name: create_install_function
-- Model functions for a role that may not create PL/Python functions (the developer role):
-- built by the runtime from the catalog row alone, never from text the caller passes.
CREATE OR REPLACE FUNCTION indb.install_model_functions(model_name text, model_version integer)
RETURNS void LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
GD["indb_runtime"].install_model_functions(model_name, model_version)
$indb$;

-- name: install_model_functions
SELECT indb.install_model_functions({model}, {version});

-- name: create_versions_function
CREATE OR REPLACE FUNCTION indb.runtime_versions() RETURNS text LANGUAGE plpython3u AS $indb$
import sys
import numpy
import onnxruntime
return "python %s; numpy %s; onnxruntime %s" % (sys.version.split()[0], numpy.__version__, onnxruntime.__version__)
$indb$;

-- name: create_compiled_function
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS {return_type}
LANGUAGE sql STABLE PARALLEL SAFE AS {body};

-- name: create_compiled_helper
-- One link of a compiled model's chain (udfs/compiler/shared.py).
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS {return_type}
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS {body};

-- name: score_compiled_row
-- A compiled row trigger's scoring (PL/pgSQL): the outputs for the row NEW into its columns.
SELECT {values} INTO {targets} FROM ({outputs}) AS o

-- name: when_row
-- A row trigger's arm that serves only some request ids (indb.lifecycle.challengers: split).
IF {condition} THEN {statement}; END IF

-- name: create_challenger_row_function
-- The onnx challengers of a row-mode deployment whose champion is compiled.
CREATE OR REPLACE FUNCTION indb.score_challenger_row() RETURNS trigger LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
return GD["indb_runtime"].score_row(TD, champion=False)
$indb$;

-- name: create_fail_function
-- Raises an error from inside an SQL expression (compiled models refuse NULL inputs with it).
CREATE OR REPLACE FUNCTION indb.fail(message text) RETURNS text LANGUAGE plpgsql STABLE AS $indb$
BEGIN
    RAISE EXCEPTION '%', message;
END
$indb$;

-- name: create_python_scalar
-- A Python scalar function (e.g. a p-value) running in the server; NULL in, NULL out.
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS {return_type}
LANGUAGE plpython3u IMMUTABLE STRICT PARALLEL SAFE AS {body};

-- name: create_null_scalar
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS {return_type}
LANGUAGE sql IMMUTABLE AS {body};

-- Batch scoring from SQL: indb.predict_batch_<model>(relation regclass, key text DEFAULT 'id')
-- returns (key, prediction, probabilities) for every row of a table or view, scoring chunks of
-- rows in one onnxruntime run each. The per-model functions are SQL over predict_batch_chunks,
-- which reads the relation with the CALLER's rights (not SECURITY DEFINER: a role scores only
-- rows it may read); the model session comes from predict_batch_load, which is SECURITY DEFINER
-- (it reads indb.model_versions as the owner and checks the content hash it is given).

-- name: create_batch_chunks_function
CREATE OR REPLACE FUNCTION indb.predict_batch_chunks(model_name text, model_version integer,
    content_hash text, relation oid, key_column text)
RETURNS TABLE (keys text, labels text, probabilities text)
LANGUAGE plpython3u STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
runtime = GD.get("indb_runtime")
if runtime is None or not runtime.has_model(model_name, model_version, content_hash):
    plan = plpy.prepare("SELECT indb.predict_batch_load($1, $2, $3)", ["text", "int4", "text"])
    plpy.execute(plan, [model_name, model_version, content_hash])
return GD["indb_runtime"].predict_batch(model_name, model_version, content_hash, relation, key_column)
$indb$;

-- name: create_batch_load_function
CREATE OR REPLACE FUNCTION indb.predict_batch_load(model_name text, model_version integer, content_hash text)
RETURNS void LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
GD["indb_runtime"].load_for_batch(model_name, model_version, content_hash)
$indb$;

-- name: create_batch_install_function
-- Creates predict_batch_<model>_v<N> (and predict_batch_<model> for the default version) from
-- the catalog row alone; the owner's (a superuser's connect, or install_model_functions).
CREATE OR REPLACE FUNCTION indb.install_batch_functions(model_name text, model_version integer, is_default boolean)
RETURNS void LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
GD["indb_runtime"].install_batch_functions(model_name, model_version, is_default)
$indb$;

-- name: install_batch_functions
SELECT indb.install_batch_functions({model}, {version}, {is_default});

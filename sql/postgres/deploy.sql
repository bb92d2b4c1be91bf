-- PostgreSQL versions of deployment statements.

-- name: create_scored_view
CREATE OR REPLACE VIEW {view} AS
SELECT {request_columns},
       p.model, p.model_version, p.runtime, p.prediction, {probability_columns}p.scored_at,
       g.label, g.observed_at
FROM {table} AS r
LEFT JOIN {predictions} AS p ON p.id = r.id AND p.served
LEFT JOIN (
    SELECT DISTINCT ON (id) id, label, observed_at
    FROM {ground_truth} ORDER BY id, observed_at DESC
) AS g ON g.id = r.id;

-- name: create_row_predictions_view
CREATE OR REPLACE VIEW {predictions} AS
SELECT id, model, model_version, runtime, prediction, {probability_columns}scored_at,
       coalesce(role, 'champion') AS role, true AS served
FROM {table}
UNION ALL
SELECT id, model, model_version, runtime, prediction, {probability_columns}scored_at, role, served
FROM {shadow};

-- name: add_row_prediction_columns
ALTER TABLE {table}
    ADD COLUMN IF NOT EXISTS model TEXT,
    ADD COLUMN IF NOT EXISTS model_version INTEGER,
    ADD COLUMN IF NOT EXISTS runtime TEXT,
    ADD COLUMN IF NOT EXISTS prediction {prediction_type},
    ADD COLUMN IF NOT EXISTS scored_at TIMESTAMP DEFAULT current_timestamp,
    ADD COLUMN IF NOT EXISTS role TEXT;

-- Switching versions under concurrent inserts (one lock order, no starvation, no deadlock).
-- Every insert into a deployed table first takes a per-deployment advisory lock in SHARED
-- mode (the BEFORE STATEMENT trigger below) and holds it to the end of its transaction; a
-- switch takes it EXCLUSIVE before it updates indb.deployments. PostgreSQL's lock manager
-- queues requests in order, so a switch waits only for the inserts already under way and
-- the inserts that arrive after it wait for it (FOR SHARE row locks let new readers jump
-- ahead and starved the switch). Inserts take the request table's lock before the advisory
-- lock; a switch that must change the table (DDL) takes the table lock first as well. The
-- key is 'indb' (0x696E6462) in the high 32 bits and the request table's oid in the low.

-- name: create_lock_function
-- Reading indb.deployments after the lock makes the backend see the catalog as the switch
-- left it (a compiled trigger function replaced by the switch is the new one).
CREATE OR REPLACE FUNCTION indb.lock_deployment() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock_shared(1768842338::bigint * 4294967296 + TG_RELID::bigint);
    PERFORM 1 FROM indb.deployments WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END
$indb$;

-- name: lock_request_table
LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;

-- name: lock_deployment
SELECT pg_catalog.pg_advisory_xact_lock(1768842338::bigint * 4294967296 + pg_catalog.to_regclass($table)::oid::bigint);

-- name: lock_deployment_shared
SELECT pg_catalog.pg_advisory_xact_lock_shared(1768842338::bigint * 4294967296 + pg_catalog.to_regclass($table)::oid::bigint);

-- name: lock_catalog
-- Installing or upgrading the catalog and runtime: one connection at a time ('indb' twice).
SELECT pg_catalog.pg_advisory_xact_lock(1768842338::bigint * 4294967296 + 1768842338);

-- name: has_trigger
SELECT count(*) FROM pg_catalog.pg_trigger
WHERE tgrelid = pg_catalog.to_regclass($table) AND tgname = $trigger AND NOT tgisinternal;

-- name: deployed_version
SELECT model, version, runtime FROM indb.deployments WHERE table_name = $table_name;

-- name: check_compiled_version
IF NOT EXISTS (
    SELECT 1 FROM indb.deployments
    WHERE table_name = {table_literal} AND model = {model_literal} AND version = {version} AND runtime = 'sql'
) THEN
    RAISE EXCEPTION '%', {message};
END IF;

-- name: check_compiled_challenger
IF NOT EXISTS (
    SELECT 1 FROM indb.challengers
    WHERE deployment = {table_literal} AND model = {model_literal} AND version = {version} AND runtime = 'sql'
) THEN
    RAISE EXCEPTION '%', {message};
END IF;

-- name: id_range
SELECT min(id), max(id) FROM {table};

-- name: unscored_batch
(SELECT * FROM {table} AS r WHERE r.id >= {low} AND r.id < {high}
 AND NOT EXISTS (SELECT 1 FROM {predictions} AS p WHERE p.id = r.id AND p.served))

-- name: create_warm_up_function
-- A new backend's first onnx-scored insert imports numpy and onnxruntime and builds the
-- model's session (250-450 ms). A pool runs this once per server connection before clients
-- use it (PgBouncer: connect_query = 'SELECT indb.warm_up()'), so no insert pays for it.
-- Returns how many deployed versions it loaded.
CREATE OR REPLACE FUNCTION indb.warm_up() RETURNS integer LANGUAGE plpython3u
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
if "indb_runtime" not in GD:
    plpy.execute("SELECT indb.load_runtime()")
import onnxruntime  # noqa: F401 (the import is most of the cost)
runtime = GD["indb_runtime"]
loaded = 0
for row in plpy.execute("SELECT table_name FROM indb.deployments WHERE runtime = 'onnx' ORDER BY table_name"):
    deployment = runtime.deployment(row["table_name"])
    model = runtime.model(deployment["model"], deployment["version"], deployment["content_hash"])
    model.session_for(1)  # and its session for one-row statements
    loaded += 1
return loaded
$indb$;

-- name: add_key
-- id is the key of a request table and of its predictions (one prediction per row); backfills
-- and the scored view look rows up by it.
ALTER TABLE {table} ADD PRIMARY KEY (id);

-- name: drop_prediction_key
-- Prediction tables from before challengers were keyed by id alone; now a request id has its
-- served prediction and a shadow one per shadow challenger (indb.lifecycle.challengers).
ALTER TABLE {predictions} DROP CONSTRAINT IF EXISTS {key};

-- name: add_served_index
-- Exactly one served prediction per request id (the champion's, or a split challenger's); the
-- scored view, monitors and backfills look served rows up by it. Shadow rows are in no index:
-- a shadow challenger costs one more row per request, not one more index entry.
CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {predictions} (id) WHERE served;

-- name: has_id_index
SELECT count(*) FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = pg_catalog.to_regclass($table) AND a.attname = 'id';

-- name: create_id_index
CREATE INDEX IF NOT EXISTS {index} ON {table} (id);

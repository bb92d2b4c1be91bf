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

-- Switching versions under concurrent inserts (one lock, FIFO: no starvation, no deadlock).
-- Every INSERT or COPY into a table holds its ROW EXCLUSIVE lock from the start of the
-- statement (parse analysis, or the plan's revalidation for a prepared statement) to the end
-- of its transaction. A switch takes the request table in SHARE ROW EXCLUSIVE mode before it
-- updates indb.deployments: that mode conflicts with ROW EXCLUSIVE and with itself (two
-- switches of one table take turns) but not with readers (ACCESS SHARE), so readers of the
-- table and its views never hold a switch up. PostgreSQL's lock manager queues requests in
-- order, so a switch waits only for the transactions already writing the table and the
-- inserts that arrive after it wait for it (FOR SHARE row locks let new readers jump ahead and
-- starved the switch). An insert therefore reads, after its table lock, the deployment as the
-- last switch committed it; and taking a table lock the transaction did not hold yet makes
-- the backend process the catalog invalidations committed before it (AcceptInvalidationMessages
-- in LockRelationOid), so a compiled trigger function the switch replaced is the new one. A
-- switch that must change the table (DDL) takes ACCESS EXCLUSIVE instead. Before taking its
-- lock a switch waits, without queueing, while a VACUUM, ANALYZE or index build holds the table
-- (lock_holders below), so inserts do not queue behind maintenance through it. Writes other
-- than inserts (UPDATE, DELETE: retention's batches) hold a switch up as inserts do. No insert
-- takes a lock of its own: tables deployed before this
-- had a BEFORE STATEMENT trigger <table>_lock taking an advisory lock, dropped on upgrade
-- (drop_lock_triggers).

-- name: lock_request_table
LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;

-- name: lock_deployment
LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE;

-- name: lock_deployment_shared
-- A backfill batch (the deployer's): conflicts with a switch as an insert does, not with inserts.
LOCK TABLE {table} IN ROW EXCLUSIVE MODE;

-- name: lock_holders
-- Other sessions holding the request table in SHARE UPDATE EXCLUSIVE mode, which conflicts with
-- a switch's lock and not with inserts: VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY and the like.
-- A switch queued behind one would make every later insert queue behind it. An ordinary
-- autovacuum is left out: PostgreSQL cancels it after deadlock_timeout when it blocks a lock
-- request (never one that prevents wraparound, or a VACUUM someone ran). A role without
-- pg_read_all_stats (a managed server's non-superuser owner) sees neither the backend type
-- nor the query of another role's session; a holder with no user at all is an autovacuum
-- worker (the only process without one that takes this lock), taken as an ordinary one.
SELECT l.pid, a.backend_type, a.query FROM pg_catalog.pg_locks AS l
LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = pg_catalog.to_regclass($table)
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
  AND l.granted AND l.mode = 'ShareUpdateExclusiveLock' AND l.pid <> pg_catalog.pg_backend_pid()
  AND NOT (a.backend_type IS NOT DISTINCT FROM 'autovacuum worker' AND a.query LIKE 'autovacuum:%'
           AND a.query NOT LIKE '%to prevent wraparound%')
  AND NOT (a.backend_type IS NULL AND a.usesysid IS NULL)
ORDER BY l.pid;

-- name: drop_lock_triggers
-- Upgrade: the per-statement lock triggers of tables deployed before, and their function.
DO $indb$
DECLARE
    t record;
BEGIN
    IF pg_catalog.to_regprocedure('indb.lock_deployment()') IS NULL THEN
        RETURN;
    END IF;
    FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger AS tg
             WHERE tg.tgfoid = 'indb.lock_deployment()'::regprocedure ORDER BY tg.tgrelid LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
    DROP FUNCTION indb.lock_deployment();
END
$indb$;

-- name: lock_catalog
-- Installing or upgrading the catalog and runtime: one connection at a time ('indb' twice).
SELECT pg_catalog.pg_advisory_xact_lock(1768842338::bigint * 4294967296 + 1768842338);

-- name: owns_indb
-- Whether this role may create what a deploy creates (trigger functions that run as indb's
-- owner, SECURITY DEFINER): a superuser, or the owner of schema indb (a managed server's
-- non-superuser owner) or a member of it. The owner's name, for the error otherwise.
SELECT pg_catalog.pg_has_role(n.nspowner, 'USAGE'), pg_catalog.pg_get_userbyid(n.nspowner)
FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'indb';

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

-- name: add_scored_at_index
-- Monitors read a window of predictions by scored_at, and a scheduled run looks for rows
-- scored since the last one: without an index each run scans every prediction ever made
-- (benchmarks/monitor_history.py). Rows arrive in scored_at order, so a BRIN index
-- (a few pages per million rows, next to nothing per insert) finds a window's pages;
-- autosummarize asks autovacuum to summarize each page range once it is full. A deploy makes
-- these with the tables; {concurrently} is CONCURRENTLY in the statements `indb doctor` gives
-- for tables deployed before (building one on a table with rows must not hold up inserts).
CREATE INDEX {concurrently} IF NOT EXISTS {index} ON {home} USING brin (scored_at) WITH (autosummarize = on);

-- name: add_label_id_index
-- A window's latest labels, and the scored view's label of a request, are looked up by id.
CREATE INDEX {concurrently} IF NOT EXISTS {index} ON {ground_truth} (id, observed_at);

-- name: add_label_time_index
-- A scheduled monitor run looks for labels recorded since the last one (which arrive roughly
-- in time order: BRIN, as for scored_at).
CREATE INDEX {concurrently} IF NOT EXISTS {index} ON {ground_truth} USING brin (observed_at) WITH (autosummarize = on);

-- name: has_id_index
SELECT count(*) FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = pg_catalog.to_regclass($table) AND a.attname = 'id';

-- name: create_id_index
CREATE INDEX IF NOT EXISTS {index} ON {table} (id);

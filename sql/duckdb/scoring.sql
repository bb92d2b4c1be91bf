-- DuckDB scoring: model functions as macros over the connection's Arrow UDF, and the
-- statement-level trigger that scores every INSERT into a deployed table.

-- name: create_predict_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS ({function}({parameters})).prediction;

-- name: create_proba_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS ({function}({parameters})).probabilities;

-- name: comment_macro
COMMENT ON MACRO {name} IS {comment};

-- name: score_rows
-- Scores every row of {source} into {predictions}: one SELECT per arm ({arms}: the champion's,
-- then each challenger's, indb.lifecycle.challengers), all in one INSERT, so every arm reads
-- the inserted rows in the same statement. {recorded} lists the stored features the request
-- rows were joined to (features_from).
INSERT INTO {predictions} (id, model, model_version, runtime, role, served, prediction{probability_columns}{recorded})
{arms};

-- name: arm_rows
-- One arm run by the onnx runtime: one UDF call per batch of rows; {role} and {served} say
-- which arm this is.
SELECT id, {model}, {version}, {runtime}, {role}, {served}, result.prediction{probability_values}{recorded}
FROM (SELECT id, {function}({arguments}) AS result{recorded} FROM {source});

-- name: create_compiled_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS {body};

-- name: arm_rows_compiled
-- One arm as compiled SQL: {outputs} is one struct {'o0': prediction, 'p': [probabilities]}
-- computed once per row ({probability_values} picks indb_outputs.p[i], NULL past the model's).
SELECT id, {model}, {version}, 'sql', {role}, {served}, indb_outputs.o0{probability_values}{recorded}
FROM (SELECT id{recorded}, {outputs} AS indb_outputs FROM {source});

-- db.insert (indb.inserts): an insert whose triggers are dropped (in a transaction of its own,
-- made again before it commits) or skipped, then their statements run over the rows it
-- inserted, in the same transaction. A trigger's statement reads the inserted rows through
-- skippable_rows: none while this connection's indb_skip_triggers is true (DuckDB keeps
-- variables per connection: other connections' inserts fire the triggers as ever).

-- name: skippable_rows
(SELECT * FROM new_rows WHERE getvariable('indb_skip_triggers') IS NOT TRUE)

-- name: record_trigger_statement
-- {statement}: the trigger's body as a literal (DDL-like: made with the trigger, no parameters).
INSERT OR REPLACE INTO indb.insert_statements (table_name, trigger_name, statement)
VALUES ({table}, {trigger}, {statement});

-- name: forget_trigger_statement
DELETE FROM indb.insert_statements WHERE table_name = {table} AND trigger_name = {trigger};

-- name: forget_table_statements
DELETE FROM indb.insert_statements WHERE table_name = {table};

-- name: insert_plan
-- Every trigger of the table, in the order they fire (DuckDB 2.0 fires a table's triggers in
-- the order of their names, whatever order they were made in), with its statement when it can be skipped
-- (a statement kept for it, and the trigger as installed reads the variable: an older indb may
-- have replaced it since),
-- the table's schema, and whether its ids come from its sequence alone ($check: the CHECK of
-- create_request_table): then the rows of a transaction with an id above a value it took from
-- the sequence are its own. Then the trigger as DuckDB keeps it (its SQL as DuckDB prints it,
-- comment, tags): a trigger db.insert drops and makes again must read the same afterwards.
WITH checked AS (
    SELECT count(*) > 0 AS server_ids FROM duckdb_constraints()
    WHERE database_name = current_database() AND schema_name = current_schema() AND table_name = $table
      AND constraint_type = 'CHECK' AND expression = $check
)
SELECT t.trigger_name, CASE WHEN contains(t.sql, 'indb_skip_triggers') THEN s.statement END,
       t.schema_name, checked.server_ids, t.sql, t.comment, t.tags
FROM duckdb_triggers() AS t
CROSS JOIN checked
LEFT JOIN indb.insert_statements AS s ON s.table_name = t.table_name AND s.trigger_name = t.trigger_name
WHERE t.database_name = current_database() AND t.schema_name = current_schema() AND t.table_name = $table
ORDER BY t.trigger_name;

-- name: installed_triggers
-- The table's triggers as DuckDB keeps them, the last four columns of insert_plan: what
-- db.insert compares after making them again (their statements and the table's CHECK are
-- unchanged in its transaction; the full plan costs 3-4x as much to read, mostly
-- duckdb_constraints()).
SELECT trigger_name, sql, comment, tags
FROM duckdb_triggers()
WHERE database_name = current_database() AND schema_name = current_schema() AND table_name = $table
ORDER BY trigger_name;

-- name: next_id
SELECT nextval($sequence);

-- name: skip_triggers
SET VARIABLE indb_skip_triggers = true;

-- name: fire_triggers
RESET VARIABLE indb_skip_triggers;

-- name: create_inserted_rows
-- What a trigger's statement reads as new_rows when db.insert runs it: this connection's rows
-- with an id above {after} (a value it took from the sequence in the same transaction).
CREATE OR REPLACE TEMP VIEW new_rows AS SELECT * FROM {table} WHERE id > {after};

-- name: drop_inserted_rows
DROP VIEW IF EXISTS temp.main.new_rows;

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

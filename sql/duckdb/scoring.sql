-- DuckDB scoring: model functions as macros over the connection's Arrow UDF, and the
-- statement-level trigger that scores every INSERT into a deployed table.

-- name: create_predict_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS ({function}({parameters})).prediction;

-- name: create_proba_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS ({function}({parameters})).probabilities;

-- name: comment_macro
COMMENT ON MACRO {name} IS {comment};

-- name: score_rows
-- Scores every row of {source} into {predictions}; one UDF call per batch of rows.
-- {recorded} lists the stored features the request rows were joined to (features_from); {role}
-- and {served} say which arm this is (the champion, or a challenger: indb.lifecycle.challengers).
INSERT INTO {predictions} (id, model, model_version, runtime, role, served, prediction{probability_columns}{recorded})
SELECT id, {model}, {version}, {runtime}, {role}, {served}, result.prediction{probability_values}{recorded}
FROM (SELECT id, {function}({arguments}) AS result{recorded} FROM {source});

-- name: create_compiled_macro
CREATE OR REPLACE MACRO {name}({parameters}) AS {body};

-- name: score_rows_compiled
INSERT INTO {predictions} (id, model, model_version, runtime, role, served, prediction{probability_columns}{recorded})
SELECT id, {model}, {version}, 'sql', {role}, {served}, {prediction}{probability_values}{recorded}
FROM {source};

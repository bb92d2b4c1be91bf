-- Transformations: feature-engineering pipelines without a final estimator, as SQL views.

-- name: get_transform
SELECT name, sha256, inputs, outputs, source, recipe, created_by, created_at
FROM indb.transforms WHERE name = $name;

-- name: list_transforms
SELECT name, source, outputs, sha256, created_by, created_at FROM indb.transforms ORDER BY name;

-- name: list_transform_names
SELECT name FROM indb.transforms ORDER BY name;

-- name: delete_transform
DELETE FROM indb.transforms WHERE name = $name;

-- name: insert_transform
INSERT INTO indb.transforms (name, onnx, sha256, inputs, outputs, source, recipe, created_by)
VALUES ($name, $onnx, $sha256, $inputs, $outputs, $source, $recipe, $created_by);

-- name: drop_view
DROP VIEW IF EXISTS {view};

-- name: create_view
-- {values} is the compiled array of every output, computed once per source row.
CREATE VIEW {view} AS
SELECT {passthrough}{outputs}
FROM (SELECT *, {values} AS indb_values FROM {source}) AS indb_rows;

-- name: create_function
-- transform_<name>(inputs...): every output of one row, as an array in the view's column order.
CREATE OR REPLACE MACRO {function}({parameters}) AS ({values});

-- name: drop_function
DROP MACRO IF EXISTS {function};

-- PostgreSQL versions of transform statements.

-- name: create_function
-- A SQL-standard body (no quoted text): the compiled expressions are parsed once, here.
CREATE OR REPLACE FUNCTION {function}({typed_parameters}) RETURNS double precision[]
LANGUAGE sql STABLE PARALLEL SAFE
RETURN {values};

-- name: drop_function
DROP FUNCTION IF EXISTS {function}({argument_types});

-- PostgreSQL: a trigger calls a PL/pgSQL function holding the statements. Statement triggers
-- fire AFTER INSERT with the inserted rows as the transition table new_rows; row triggers
-- fire BEFORE INSERT with the row as NEW. SECURITY DEFINER functions pin search_path, so
-- their statements name every object with its schema.

-- name: create_function
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {body};

-- name: create_definer_function
-- The settings its statements are parsed and run with are pinned too, whatever the client set.
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS {body};

-- name: statement_body
BEGIN {statements}; RETURN NULL; END

-- name: row_body
BEGIN {statements}; RETURN NEW; END

-- name: create_statement_trigger
CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}();

-- name: create_row_trigger
CREATE OR REPLACE TRIGGER {trigger} BEFORE INSERT ON {table}
FOR EACH ROW EXECUTE FUNCTION {function}();

-- name: drop_trigger
DROP TRIGGER IF EXISTS {trigger} ON {table};

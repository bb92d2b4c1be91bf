-- PostgreSQL: one PL/pgSQL trigger function per deployment runs both humility statements;
-- its trigger sorts after <table>_score, so it sees the predictions.

-- name: create_function
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {body};

-- name: create_trigger
CREATE TRIGGER {trigger} AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}();

-- name: drop_trigger
DROP TRIGGER IF EXISTS {trigger} ON {table};

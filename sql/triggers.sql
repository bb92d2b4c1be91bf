-- Triggers, built by Backend.trigger_sql for deployments, feature sets and humility rules.
-- DuckDB: the trigger holds its one statement; {body} reads the inserted rows as new_rows.
-- {slots} are quoted identifiers and statements indb rendered.

-- name: create_statement_trigger
CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
{body};

-- name: drop_trigger
DROP TRIGGER IF EXISTS {trigger} ON {table};

-- name: current_schema
-- The schema a trigger's table and statements are qualified with.
SELECT current_schema();

-- PostgreSQL: a trigger calls a PL/pgSQL function holding the statements. Statement triggers
-- fire AFTER INSERT with the inserted rows as the transition table new_rows; row triggers
-- fire BEFORE INSERT with the row as NEW. SECURITY DEFINER functions pin search_path, so
-- their statements name every object with its schema. Triggers of one table fire in name
-- order: <table>_score before <table>_score_arm_* before <table>_score_explain before
-- <table>_score_humility.

-- name: create_function
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {body};

-- name: create_definer_function
-- The settings its statements are parsed and run with are pinned too, whatever the client set.
-- jit = off: PL/pgSQL plans a statement once per session and keeps the plan, JIT decision
-- included, made from the row count of the first transition table; a compiled forest's
-- statement past jit_optimize_above_cost then spends seconds in LLVM on every later insert,
-- one-row inserts too (benchmarks/RESULTS.md, issue 17 second pass: trees).
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on
SET jit = off AS {body};

-- name: body
BEGIN {statements}; RETURN {result}; END

-- name: guarded_body
-- A guarded function first checks that the table firing it is the one it was made for
-- (anyone owning a table can attach a trigger function), then runs its statements; an error
-- is raised again from here, so its context names this function, not the statements
-- (a compiled model's coefficients, categories) an INSERT-only client must not see.
BEGIN
    IF TG_TABLE_SCHEMA IS DISTINCT FROM {schema} OR TG_TABLE_NAME IS DISTINCT FROM {table} THEN
        RAISE EXCEPTION 'IntegrityError: % fired on %.%, which is not the deployed table %.%; nothing was written',
            TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, {schema}, {table} USING ERRCODE = 'insufficient_privilege';
    END IF;
    BEGIN
        {statements};
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
    END;
    RETURN {result};
END

-- name: create_statement_trigger
CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}({arguments});

-- name: create_row_trigger
CREATE OR REPLACE TRIGGER {trigger} BEFORE INSERT ON {table}
FOR EACH ROW EXECUTE FUNCTION {function}({arguments});

-- name: create_before_statement_trigger
CREATE OR REPLACE TRIGGER {trigger} BEFORE INSERT ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION {function}({arguments});

-- name: drop_trigger
DROP TRIGGER IF EXISTS {trigger} ON {table};

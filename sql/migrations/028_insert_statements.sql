-- db.insert on DuckDB (issue 17): an INSERT into a table with a statement trigger runs on one
-- thread there, so db.insert inserts with the table's triggers skipped (their statements read
-- the inserted rows through a filter on a variable of its own cursor) and then runs each
-- trigger's statement itself, in the same transaction, over the rows it inserted. The
-- statement of each trigger that can be skipped so is kept here, written by the statements
-- that create the trigger: the text is the trigger's own body, rendered once. A trigger of
-- the table without a row here (made before this migration, or not indb's) makes db.insert
-- insert through the triggers as any INSERT does. PostgreSQL leaves the table empty: its
-- triggers score every insert in parallel with it.
CREATE TABLE IF NOT EXISTS indb.insert_statements (
    table_name   VARCHAR NOT NULL,
    trigger_name VARCHAR NOT NULL,
    statement    VARCHAR NOT NULL,
    PRIMARY KEY (table_name, trigger_name)
);
COMMENT ON TABLE indb.insert_statements IS 'Per request table and trigger: the statement the trigger runs, which db.insert runs itself after an insert that skipped the trigger (DuckDB).';

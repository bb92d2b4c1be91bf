-- PostgreSQL versions of explanation statements.

-- name: create_explain_macro
-- One row's contributions as a set of (feature, contribution) rows: SELECT * FROM indb.explain_m(...).
CREATE OR REPLACE FUNCTION {name}({parameters}) RETURNS TABLE (feature text, contribution double precision)
LANGUAGE sql STABLE AS {body};

-- name: comment_explain_macro
COMMENT ON FUNCTION {name}({argument_types}) IS {comment};

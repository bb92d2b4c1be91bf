"""The SQL layer monitoring stands on: a reference query is a user's query (one read-only
SELECT, checked by indb.userquery), and one Backend.trigger_sql builds every trigger."""

from __future__ import annotations

import pytest

from indb.errors import QueryError
from indb.sql import statement
from tests.test_monitoring_drift import deployed
from tests.test_monitoring_trust import _two_days


@pytest.mark.parametrize(
    "query",
    [
        "WITH gone AS (DELETE FROM requests RETURNING *) SELECT x, y, c FROM gone",
        "SELECT x, y, c FROM requests; DROP TABLE requests",
        "SELECT x, y, c INTO TABLE copied FROM requests",
    ],
    ids=["delete-in-cte", "two-statements", "select-into"],
)
def test_a_reference_query_may_only_read(db, query):
    deployed(db)
    _two_days(db)
    with pytest.raises(QueryError, match="reference query"):
        db.create_monitor("m", "requests", reference=query)
    assert db.sql("SELECT count(*) AS n FROM requests").n[0] == 400
    assert db.monitors().empty
    monitor = db.create_monitor("m", "requests", reference="SELECT x, y, c, prediction FROM requests_scored")
    assert monitor.n_reference == 400


def test_trigger_sql_builds_statement_triggers_on_both_backends(db):
    backend = db.backend
    ((schema,),) = backend.rows(statement("triggers", "current_schema", backend.dialect))
    q = backend.quote
    db.sql("CREATE TABLE events (id INTEGER, v DOUBLE PRECISION)")
    db.sql("CREATE TABLE seen (id INTEGER, doubled DOUBLE PRECISION, n BIGINT)")
    body = [
        f"INSERT INTO {q(schema, 'seen')} SELECT id, v * 2, NULL FROM new_rows",
        f"UPDATE {q(schema, 'seen')} SET n = (SELECT count(*) FROM new_rows) WHERE n IS NULL",
    ]
    for text in backend.trigger_sql(
        "events_copy", q(schema, "events"), body, function=q(schema, "events_copy"), definer=True
    ):
        backend.execute(text)
    db.sql("INSERT INTO events VALUES (1, 1.5), (2, 2.5)")
    db.sql("INSERT INTO events VALUES (3, 4.0)")
    got = db.sql("SELECT id, doubled, n FROM seen ORDER BY id")
    assert got.values.tolist() == [[1, 3.0, 2], [2, 5.0, 2], [3, 8.0, 1]]
    if backend.trigger_functions:  # PostgreSQL: a function, SECURITY DEFINER, search_path pinned
        ((definer, config),) = backend.rows(
            "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = to_regproc($f)",
            {"f": f"{schema}.events_copy"},
        )
        # jit off: a plan a bulk insert cached would JIT-compile every later one-row insert
        assert definer and config == [
            "search_path=pg_catalog, pg_temp",
            "standard_conforming_strings=on",
            "jit=off",
        ]
        db.sql("CREATE TABLE stamped (id INTEGER, label TEXT)")
        row = ["NEW.label := 'row ' || NEW.id"]
        for text in backend.trigger_sql(
            "stamp", q(schema, "stamped"), row, function=q(schema, "stamp"), row=True
        ):
            backend.execute(text)
        db.sql("INSERT INTO stamped (id) VALUES (7) ")
        assert db.sql("SELECT label FROM stamped").label[0] == "row 7"
    else:
        with pytest.raises(NotImplementedError):
            backend.trigger_sql("stamp", q(schema, "events"), ["SELECT 1"], row=True)

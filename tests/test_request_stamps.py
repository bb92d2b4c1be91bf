"""10.5: a request row's id and created_at (row mode: its scored_at and prediction columns, and
``<table>_predictions.scored_at``) are the server's. On PostgreSQL indb_app may INSERT only the
request columns (a column privilege); on DuckDB the request table's CHECKs refuse a created_at
other than the transaction's and an id beyond the table's sequence."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest

import indb
from tests.conftest import NUMERIC
from tests.test_trust_postgres import login_role

COLUMNS = ", ".join(NUMERIC)
ROW = "(52000.0, 9000.0, 35, 4.5)"


@contextmanager
def client(db):
    """What an application runs its SQL with: indb_app's login on PostgreSQL (raising psycopg's
    errors), the database itself on DuckDB (no roles)."""
    if db.backend.name != "postgresql":

        def local(sql: str):
            frame = db.sql(sql)
            return None if frame is None else list(frame.itertuples(index=False, name=None))

        yield local
        return
    with login_role(db, "indb_app") as (_, url), psycopg.connect(url, autocommit=True) as app:

        def run(sql: str):
            cursor = app.execute(sql)
            return cursor.fetchall() if cursor.description else None

        yield run


def _refused(db):
    if db.backend.name == "postgresql":
        return pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied")
    return pytest.raises(indb.errors.DatabaseError, match=r"is set by the server: leave it out")


def test_clients_cannot_set_a_request_rows_id_or_created_at(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="sql")
    with client(db) as run:
        run(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
        with _refused(db):
            run(f"INSERT INTO requests ({COLUMNS}, created_at) VALUES {ROW[:-1]}, TIMESTAMP '2020-01-01')")
        with _refused(db):  # an id the sequence has not given: it would collide with a later one
            run(f"INSERT INTO requests (id, {COLUMNS}) VALUES (1000000, {ROW[1:]}")
        if db.backend.name == "postgresql":  # DuckDB accepts an id the sequence already gave
            with _refused(db):
                run(f"INSERT INTO requests (id, {COLUMNS}) VALUES (1, {ROW[1:]}")
        run(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}, {ROW}")
    rows = db.sql("SELECT id, created_at FROM requests ORDER BY id")
    assert len(rows) == 3 and rows.id.is_unique and rows.id.max() < 1000000  # refused rows used ids
    assert rows.created_at.min().year > 2020
    scored = db.sql("SELECT count(*) AS n FROM requests_predictions")
    assert int(scored.n[0]) == 3


def test_returning_gives_the_servers_values(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="sql")
    with client(db) as run:
        ((row_id, created_at),) = run(
            f"INSERT INTO requests ({COLUMNS}) VALUES {ROW} RETURNING id, created_at"
        )
    assert row_id == 1 and created_at.year > 2020


def test_app_cannot_set_row_mode_predictions_nor_write_prediction_tables(db, logistic, loans):
    """PostgreSQL only: row mode and roles."""
    if db.backend.name != "postgresql":
        pytest.skip("row mode and roles are PostgreSQL's")
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="rows", runtime="sql", mode="row")
    db.deploy("m", table="requests", runtime="sql")
    with client(db) as run:
        ((label,),) = run(f"INSERT INTO rows ({COLUMNS}) VALUES {ROW} RETURNING prediction")
        assert label in ("repaid", "default")
        for column, value in (
            ("scored_at", "TIMESTAMP '2020-01-01'"),
            ("prediction", "'repaid'"),
            ("probability_repaid", "1.0"),
            ("model_version", "7"),
        ):
            with _refused(db):
                run(f"INSERT INTO rows ({COLUMNS}, {column}) VALUES {ROW[:-1]}, {value})")
        ((row_id,),) = run(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW} RETURNING id")
        for statement in (
            f"UPDATE requests_predictions SET scored_at = TIMESTAMP '2020-01-01' WHERE id = {row_id}",
            "INSERT INTO requests_predictions (id, model, model_version, runtime) VALUES (99, 'm', 1, 'sql')",
            f"UPDATE requests SET created_at = TIMESTAMP '2020-01-01' WHERE id = {row_id}",
        ):
            with _refused(db):
                run(statement)
    # the table's owner may still write them (backfilling history)
    db.sql(
        f"INSERT INTO requests (id, {COLUMNS}, created_at) VALUES (100, {ROW[1:-1]}, TIMESTAMP '2020-01-01')"
    )
    assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == 2


def test_adopted_tables_keep_their_own_columns(db, logistic, loans):
    """An adopted table's own created_at (no default) stays the application's to set; the id
    indb adds to it is the server's."""
    db.sql(
        "CREATE TABLE adopted (income FLOAT8, debt FLOAT8, age BIGINT, tenure FLOAT8, created_at TIMESTAMP)"
    )
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="adopted", runtime="sql")
    with client(db) as run:
        run(f"INSERT INTO adopted ({COLUMNS}, created_at) VALUES {ROW[:-1]}, TIMESTAMP '2020-01-01')")
        if db.backend.name == "postgresql":
            with _refused(db):
                run(f"INSERT INTO adopted (id, {COLUMNS}) VALUES (5, {ROW[1:]}")
    assert str(db.sql("SELECT created_at FROM adopted_scored").created_at[0]).startswith("2020-01-01")


def test_an_adopted_table_without_id_switches_versions(db, logistic, loans):
    """indb adds id as the adopted table's last column; the scored view puts it there too, so a
    later deploy finds the same view (PostgreSQL refused to reorder it: `indb demo` switched
    versions on such a table)."""
    db.sql("CREATE TABLE adopted (income FLOAT8, debt FLOAT8, age BIGINT, tenure FLOAT8, applied_at DATE)")
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="adopted", version=1, runtime="sql")
    db.deploy("m", table="adopted", version=2, runtime="sql")
    db.sql(f"INSERT INTO adopted ({COLUMNS}, applied_at) VALUES {ROW[:-1]}, DATE '2020-01-01')")
    scored = db.sql("SELECT * FROM adopted_scored")
    assert list(scored.columns[:6]) == [*NUMERIC, "applied_at", "id"]
    assert scored.model_version[0] == 2

"""The PL/Python runtime keeps each deployment row between inserts (issue 17) and reads only
its row version, (xmin, ctid), after the insert's lock: a switch, a change of challengers or a
deploy in the inserting transaction itself must be seen by the very next insert of a kept
connection, and a row-mode insert writes back only the columns it scored."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import NUMERIC
from tests.switch_stress import models

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)
ROW = "(50000, 9000, 35, 2)"


def _versions(db, table: str) -> list[int]:
    return db.sql(f"SELECT model_version FROM {table}_predictions ORDER BY id").model_version.tolist()


@pytest.mark.parametrize("mode", ["row", "bulk"])
def test_a_kept_connection_scores_with_the_version_deployed_after_each_switch(db, loans, mode):
    for model in models(loans).values():
        db.register_model("m", model, sample=loans[NUMERIC])
    db.deploy("m", table="requests", version=1, runtime="onnx", mode=mode)
    insert = f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}"
    with psycopg.connect(db.url, autocommit=True) as app:
        app.execute(insert)
        app.execute(insert)  # the kept row
        db.deploy("m", table="requests", version=2, runtime="onnx", mode=mode)
        app.execute(insert)
        db.deploy("m", table="requests", version=1, runtime="onnx", mode=mode)
        app.execute(insert)
        db.deploy("m", table="requests", version=2, runtime="onnx", mode=mode)
        app.execute(insert)
    assert _versions(db, "requests") == [1, 1, 2, 1, 2]


def test_a_challenger_added_or_removed_is_seen_by_the_next_row_mode_insert(db, loans):
    for model in models(loans).values():
        db.register_model("m", model, sample=loans[NUMERIC])
    db.deploy("m", table="requests", version=1, runtime="onnx", mode="row")
    insert = f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}"
    with psycopg.connect(db.url, autocommit=True) as app:
        app.execute(insert)
        db.add_challenger("requests", 2, mode="shadow", runtime="onnx")
        app.execute(insert)
        db.remove_challenger("requests", 2)
        app.execute(insert)
    shadow = db.sql("SELECT id FROM requests_shadow_predictions ORDER BY id").id.tolist()
    assert shadow == [2]


def test_a_deploy_inside_the_inserting_transaction_is_seen_by_its_next_insert(db, loans):
    """The same transaction holds the deployment's lock shared and takes it exclusive to
    switch: its own update of the deployment row gives the row a new version."""
    for model in models(loans).values():
        db.register_model("m", model, sample=loans[NUMERIC])
    db.deploy("m", table="requests", version=1, runtime="onnx", mode="row")
    conn = db.backend.conn
    insert = f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}"
    with db.backend.transaction():
        conn.execute(insert)
        db.deploy("m", table="requests", version=2, runtime="onnx", mode="row")
        conn.execute(insert)
    assert _versions(db, "requests") == [1, 2]


def test_a_row_mode_insert_keeps_the_request_columns_as_sent(db, loans):
    """Only the scored columns go back into the row: the request's floats and its created_at
    are the values inserted, bit for bit."""
    db.register_model("m", models(loans)[1], sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx", mode="row")
    values = (0.1 + 0.2, 1e-310, 35, 5e-324)
    with psycopg.connect(db.url, autocommit=True) as app:
        ((stamp,),) = app.execute("SELECT '2020-01-02 03:04:05.678901'::timestamp").fetchall()
        app.execute(
            f"INSERT INTO requests ({COLUMNS}, created_at) VALUES (%s, %s, %s, %s, %s)", [*values, stamp]
        )
        row = app.execute(f"SELECT {COLUMNS}, created_at, prediction, model_version FROM requests").fetchone()
    assert row[:4] == values
    assert row[4] == stamp
    assert row[5] in ("repaid", "default") and row[6] == 1

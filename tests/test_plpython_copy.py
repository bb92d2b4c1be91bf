"""Bulk statements of COPY_MIN_ROWS rows or more write their predictions with a binary COPY
(issue 17, second pass): the same rows, values and columns as the prepared unnest insert that
smaller statements use, in the same transaction, under version switches, for an INSERT-only
role, and with no file left behind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests import switch_stress
from tests.conftest import NUMERIC, loan_frame
from tests.parity import assert_matches_sklearn
from tests.test_trust_postgres import login_role

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)
ROWS = 1500  # one statement above the runtime's COPY_MIN_ROWS (1000), three below it
LEFT_FILES = (
    "SELECT count(*) FROM pg_catalog.pg_ls_dir('base/pgsql_tmp', true, false) AS f "
    "WHERE f LIKE 'pgsql_tmp_indb.%'"
)
COPIES = (
    "CREATE OR REPLACE FUNCTION pg_temp.indb_copies() RETURNS integer LANGUAGE plpython3u AS "
    "$$ return GD['indb_runtime'].copies if 'indb_runtime' in GD else 0 $$"
)


def _model(kind: str, frame: pd.DataFrame):
    x = frame[NUMERIC]
    if kind == "regression":
        return make_pipeline(StandardScaler(), LinearRegression()).fit(x, frame.loss)
    labels = frame.label if kind == "text" else (frame.label == "repaid").astype(np.int64)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, labels)


def _insert(url: str, table: str, frame: pd.DataFrame, statements: int) -> int:
    """The rows in ``statements`` INSERT ... SELECT statements on one connection; the number of
    COPYs its runtime made."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(COPIES)
        for part in np.array_split(np.arange(len(frame)), statements):
            rows = frame.iloc[part]
            conn.execute(
                f"INSERT INTO {table} ({COLUMNS}) SELECT * FROM unnest(%s::float8[], %s::float8[], "
                "%s::int8[], %s::float8[])",
                [rows[c].tolist() for c in NUMERIC],
            )
        return conn.execute("SELECT pg_temp.indb_copies()").fetchone()[0]


def _predictions(db, table: str) -> pd.DataFrame:
    return db.sql(f"SELECT * FROM {table}_predictions ORDER BY id, served DESC").drop(columns="scored_at")


@pytest.mark.parametrize("kind", ["integer", "text", "regression"])
def test_a_large_statement_is_copied_with_the_values_of_the_unnest_insert(db, loans, kind):
    model = _model(kind, loans)
    db.register_model("m", model, sample=loans[NUMERIC])
    db.deploy("m", table="big", runtime="onnx")
    db.deploy("m", table="small", runtime="onnx")
    frame = loan_frame(ROWS, seed=5)
    assert _insert(db.url, "big", frame, 1) == 1
    assert _insert(db.url, "small", frame, 3) == 0
    big, small = _predictions(db, "big"), _predictions(db, "small")
    pd.testing.assert_frame_equal(big, small)  # exact: every value, type and column
    assert big.id.tolist() == list(range(1, ROWS + 1))
    assert (big.model == "m").all() and (big.runtime == "onnx").all() and big.served.all()
    probabilities = [c for c in big.columns if c.startswith("probability_")]
    assert_matches_sklearn(
        model, frame[NUMERIC], big.prediction, big[probabilities].to_numpy() if probabilities else None
    )
    assert db.sql(LEFT_FILES).iloc[0, 0] == 0


def test_challenger_arms_are_copied_with_their_role_and_served_flag(db, loans):
    versions = switch_stress.models(loans)
    for number in (1, 2, 3):
        db.register_model("m", versions[1 + number % 2], sample=loans[NUMERIC])
    for table in ("big", "small"):
        db.deploy("m", table=table, version=1, runtime="onnx")
        db.add_challenger(table, 2, mode="shadow", runtime="onnx")
        db.add_challenger(table, 3, mode="split", weight=0.3, runtime="onnx")
    frame = loan_frame(ROWS, seed=6)
    # COPY for the champion's ~1,050 served rows and the shadow's 1,500; the split arm's ~450
    # go by the unnest insert
    assert _insert(db.url, "big", frame, 1) == 2
    assert _insert(db.url, "small", frame, 3) == 0
    big = _predictions(db, "big")
    pd.testing.assert_frame_equal(big, _predictions(db, "small"))
    served = big[big.served]
    assert served.id.tolist() == list(range(1, ROWS + 1))
    assert set(served.model_version) == {1, 3}
    shadow = big[~big.served]
    assert (shadow.role == "challenger").all() and (shadow.model_version == 2).all() and len(shadow) == ROWS


def test_a_backfill_copies_the_rows_it_scores(db, loans):
    model = _model("text", loans)
    db.register_model("m", model, sample=loans[NUMERIC])
    frame = loan_frame(ROWS, seed=7)
    db.write_table("old", frame[NUMERIC].assign(id=np.arange(1, ROWS + 1)), replace=True)
    db.deploy("m", table="old", runtime="onnx")
    got = _predictions(db, "old")
    assert got.id.tolist() == list(range(1, ROWS + 1))
    assert_matches_sklearn(
        model, frame[NUMERIC], got.prediction, got[["probability_default", "probability_repaid"]].to_numpy()
    )


def test_an_insert_only_role_rolls_back_and_fails_cleanly(db, loans):
    """The trigger function's owner may COPY from a server file; the inserting role needs only
    INSERT. A rolled-back or failed statement leaves neither rows nor a file."""
    db.register_model("m", _model("text", loans), sample=loans[NUMERIC])
    db.deploy("m", table="requests", runtime="onnx")
    frame = loan_frame(ROWS, seed=8)
    values = [frame[c].tolist() for c in NUMERIC]
    insert = (
        f"INSERT INTO requests ({COLUMNS}) SELECT * FROM unnest(%s::float8[], %s::float8[], "
        "%s::int8[], %s::float8[])"
    )
    with login_role(db, "indb_app") as (_, url), psycopg.connect(url) as app:
        app.execute(insert, values)
        app.rollback()
        assert db.sql("SELECT count(*) FROM requests_predictions").iloc[0, 0] == 0
        # a served prediction already there for an id the next statement gets: COPY fails
        db.sql(
            "INSERT INTO requests_predictions (id, model, model_version, runtime) "
            "SELECT last_value + 7, 'm', 1, 'onnx' FROM requests_id_seq"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            app.execute(insert, values)
        app.rollback()
        app.execute(insert, values)
        app.commit()
    assert db.sql("SELECT count(*) FROM requests").iloc[0, 0] == ROWS
    assert db.sql("SELECT count(*) FROM requests_predictions").iloc[0, 0] == ROWS + 1
    assert db.sql(LEFT_FILES).iloc[0, 0] == 0


def test_switches_under_writers_of_copied_statements(db):
    report = switch_stress.run(
        db.url,
        mode="bulk",
        runtime="onnx",
        writers=2,
        batch=1200,
        seconds=4,
        switch_every=0.5,
        min_switches=4,
    )
    print(report.summary())
    assert report.failures == []
    assert report.problems == []
    assert len(report.switches) >= 4
    assert report.statements > 0
    assert db.sql(LEFT_FILES).iloc[0, 0] == 0

"""What only the PostgreSQL backend does: other clients, row mode, concurrency, privileges."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import psycopg
import pytest

import indb
from tests.conftest import NUMERIC, loan_frame
from tests.parity import assert_matches_sklearn

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}").geturl()


def test_psql_scores_through_the_trigger_and_the_function(db, forest, loans):
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql not found: install the PostgreSQL client (bash .ci/install_postgres.sh)")
    db.register_model("m", forest, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    row = loans[NUMERIC].iloc[[7]]
    values = ", ".join(repr(float(v)) for v in row.iloc[0])
    script = (
        f"INSERT INTO requests ({COLUMNS}) VALUES ({values});"
        "SELECT prediction, probability_1 FROM requests_predictions;"
        f"SELECT indb.predict_m({values}), (indb.predict_proba_m({values}))[2];"
    )
    out = subprocess.run(
        [psql, db.url, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    trigger, function = out[-2].split("|"), out[-1].split("|")
    expected = forest.predict_proba(row)[0][1]
    assert int(trigger[0]) == int(function[0]) == int(forest.predict(row)[0])
    assert float(trigger[1]) == pytest.approx(expected, abs=1e-5)
    assert float(function[1]) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("runtime", ["onnx", "sql"])
def test_row_mode_deploys_a_regressor(db, boosted_regressor, loans, fresh_loans, runtime):
    """Row mode added `prediction DOUBLE` to the request table, a type PostgreSQL does not
    know: every row-mode regressor deploy failed."""
    db.register_model("m", boosted_regressor, sample=loans[NUMERIC])
    db.deploy("m", table="requests", mode="row", runtime=runtime)
    rows = fresh_loans[NUMERIC].head(5)
    with psycopg.connect(db.url, autocommit=True) as app:
        got = [
            app.execute(
                f"INSERT INTO requests ({COLUMNS}) VALUES (%s, %s, %s, %s) RETURNING prediction",
                [float(r.income), float(r.debt), int(r.age), float(r.tenure)],
            ).fetchone()[0]
            for r in rows.itertuples(index=False)
        ]
    np.testing.assert_allclose(got, boosted_regressor.predict(rows), rtol=1e-5, atol=1e-5)


def test_row_mode_returns_the_prediction_in_one_round_trip(db, mixed_pipeline, loans, fresh_loans):
    columns = NUMERIC + ["purpose"]
    db.register_model("m", mixed_pipeline, sample=loans[columns])
    db.deploy("m", table="requests", mode="row")
    rows = fresh_loans[columns].head(20)
    got = []
    with psycopg.connect(db.url, autocommit=True) as app:
        for record in rows.itertuples(index=False):
            got.append(
                app.execute(
                    "INSERT INTO requests (income, debt, age, tenure, purpose) VALUES (%s, %s, %s, %s, %s) "
                    "RETURNING prediction, probability_default, probability_repaid",
                    [
                        float(record.income),
                        float(record.debt),
                        int(record.age),
                        float(record.tenure),
                        record.purpose,
                    ],
                ).fetchone()
            )
    assert_matches_sklearn(mixed_pipeline, rows, [g[0] for g in got], [g[1:] for g in got])
    scored = db.sql("SELECT * FROM requests_scored ORDER BY id")
    assert scored.prediction.tolist() == [g[0] for g in got] and set(scored.model_version) == {1}
    predictions = db.sql("SELECT * FROM requests_predictions")
    assert list(predictions.columns)[:5] == ["id", "model", "model_version", "runtime", "prediction"]
    with pytest.raises(indb.DeploymentError, match="row mode; undeploy"):
        db.deploy("m", table="requests", mode="bulk")


def test_writers_never_block_on_a_version_switch(db, logistic, forest, loans):
    """8 writers insert while another connection deploys version 2 halfway; each writer goes on
    for a few statements after the switch committed (however long the switch took)."""
    from sklearn.ensemble import RandomForestClassifier

    second = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=2).fit(
        loans[NUMERIC], loans.label
    )
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("m", second, sample=loans[NUMERIC])
    db.deploy("m", table="requests", version=1, runtime="onnx")
    writers, rows_most, batch, after_switch = 8, 4_000, 20, 3
    data = loan_frame(writers * rows_most, seed=11)[NUMERIC]
    inserted, failures, statements = [0], [], []
    lock = threading.Lock()
    halfway, switched = threading.Event(), threading.Event()

    def write(number: int) -> None:
        part = data.iloc[number * rows_most : (number + 1) * rows_most]
        later = 0
        try:
            with psycopg.connect(db.url, autocommit=True) as app:
                for start in range(0, rows_most, batch):
                    chunk = part.iloc[start : start + batch]
                    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                    values = [
                        float(v) if i != 2 else int(v)
                        for r in chunk.itertuples(index=False)
                        for i, v in enumerate(r)
                    ]
                    began = time.monotonic()
                    ids = app.execute(
                        f"INSERT INTO requests ({COLUMNS}) VALUES {placeholders} RETURNING id", values
                    ).fetchall()
                    with lock:
                        statements.append((number, began, time.monotonic(), [i[0] for i in ids]))
                        inserted[0] += len(ids)
                        if inserted[0] >= writers * 500:
                            halfway.set()
                    later += switched.is_set()
                    if later > after_switch:
                        break
        except Exception as e:  # collected and asserted on below
            failures.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    assert halfway.wait(120), "writers made no progress"
    with indb.connect(db.url) as admin:
        switch_started = time.monotonic()
        admin.deploy("m", table="requests", version=2, runtime="onnx")
        switch_committed = time.monotonic()
    switched.set()
    for thread in threads:
        thread.join(180)
    assert not any(t.is_alive() for t in threads), "a writer is stuck (deadlock?)"
    assert failures == []

    scored = db.sql(
        "SELECT r.id, p.model_version, p.prediction FROM requests r JOIN requests_predictions p USING (id)"
    )
    assert len(scored) == inserted[0] == scored.id.nunique()
    assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == inserted[0]
    version = dict(zip(scored.id, scored.model_version, strict=True))
    assert set(version.values()) == {1, 2}
    last_seen = {}
    for number, began, finished, ids in sorted(statements, key=lambda s: s[1]):
        versions = {version[i] for i in ids}
        assert len(versions) == 1, "one statement, one version"
        (used,) = versions
        if finished < switch_started:
            assert used == 1
        if began > switch_committed:
            assert used == 2
        assert used >= last_seen.get(number, 1), "a writer went back to the old version"
        last_seen[number] = used
    models = {1: logistic, 2: second}
    # each writer inserted the first rows of its part, in statement order
    parts, id_order = [], []
    for number in range(writers):
        mine = sorted((s for s in statements if s[0] == number), key=lambda s: s[1])
        ids = [i for s in mine for i in s[3]]
        parts.append(data.iloc[number * rows_most : number * rows_most + len(ids)])
        id_order += ids
    frame = pd.concat(parts).assign(id=id_order)
    merged = frame.merge(scored, on="id")
    for number, model in models.items():
        part = merged[merged.model_version == number]
        assert_matches_sklearn(model, part[NUMERIC], part.prediction)


def test_a_user_without_privileges_gets_a_clear_error(db, logistic, loans):
    """An application needs INSERT on its table only; model tables stay closed to it."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.deploy("m", table="requests")
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        with pytest.raises(
            indb.PermissionDeniedError, match=rf"'{role}'.*permission denied(.|\n)*GRANT indb_reader"
        ):
            indb.connect(_as_user(db.url, role))
        with psycopg.connect(_as_user(db.url, role), autocommit=True) as app:
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match="permission denied for table requests"
            ):
                app.execute(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4)")
            db.sql(f'GRANT SELECT, INSERT ON requests TO "{role}"')
            db.sql(f'GRANT USAGE ON SEQUENCE requests_id_seq TO "{role}"')
            app.execute(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4)")
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match="permission denied for schema indb"
            ):
                app.execute("SELECT indb.predict_m(1, 2, 3, 4)")
        assert db.sql("SELECT count(*) AS n FROM requests_predictions").n[0] == 1
    finally:
        db.sql(f'DROP OWNED BY "{role}"')
        db.sql(f'DROP ROLE "{role}"')


def test_doctor_reports_the_server(db):
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "indb.cli", "doctor", "--db", db.url],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "ok   server" in out and "PostgreSQL 1" in out
    assert "ok   PL/Python      installed" in out
    assert "ok   server Python  python 3" in out and "onnxruntime" in out


def test_model_functions_work_in_queries_planned_in_parallel(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.write_table("applicants", loan_frame(20_000, seed=4)[NUMERIC], replace=True)
    with db.backend.transaction():
        for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
            db.sql(f"SET LOCAL {setting} = 0")
        result = db.sql(
            f"SELECT count(predict_m({COLUMNS})) AS n, avg((predict_proba_m({COLUMNS}))[2]) AS p "
            "FROM applicants"
        )
    assert result.n[0] == 20_000
    frame = db.sql("SELECT * FROM applicants")
    assert result.p[0] == pytest.approx(logistic.predict_proba(frame[NUMERIC])[:, 1].mean(), abs=1e-9)

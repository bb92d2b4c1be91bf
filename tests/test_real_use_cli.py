"""Issue 11.15/11.16: what the README promises and the errors a new user met."""

from __future__ import annotations

import subprocess
import sys

import pytest

import indb
from indb.errors import IndbError, InvalidNameError, ScoringError
from tests.conftest import NUMERIC


def test_model_summary_view_answers_the_readme_query(db, loans, logistic):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.set_alias("loans", "production", 1)
    rows = db.sql(
        "SELECT name, versions, latest_version, production_version FROM indb.model_summary"
    ).to_dict("records")
    assert rows == [{"name": "loans", "versions": 2, "latest_version": 2, "production_version": 1}]
    assert db.models()[["name", "versions"]].to_dict("records") == [{"name": "loans", "versions": 2}]


def test_write_table_creates_a_new_table_and_appends_to_it(db, loans):
    db.write_table("applicants", loans[NUMERIC].head(3))
    db.write_table("applicants", loans[NUMERIC].head(2))
    assert int(db.sql("SELECT count(*) AS n FROM applicants").n[0]) == 5


def test_unknown_dialect_is_a_clear_error(db, loans, logistic):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    with pytest.raises(InvalidNameError, match="unknown SQL dialect 'sqlserver'.*postgres"):
        db.compile_sql("loans", dialect="sqlserver")
    assert "-- prediction" in db.compile_sql("loans", dialect="postgresql")  # PostgreSQL's usual name


@pytest.mark.parametrize("url", ["sqlite:///tmp/x.db", "sqlite://x.db", "mysql://u@h/db"])
def test_unknown_url_schemes_are_refused(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IndbError, match="unknown database URL scheme.*duckdb:///.*postgresql://"):
        indb.connect(url)
    assert not list(tmp_path.iterdir())  # no file was made


PLAIN_CLIENT = """
import sys, duckdb
assert "indb" not in sys.modules
con = duckdb.connect(sys.argv[1])
try:
    con.execute("INSERT INTO loan_requests (income, debt, age, tenure) VALUES (52000, 9000, 35, 4.5)")
except duckdb.Error as e:
    print(e)
    try:
        con.execute("SELECT predict_loans(52000, 9000, 35, 4.5)")
    except duckdb.Error as e:
        print(e)
else:
    print("inserted", con.execute("SELECT count(*) FROM loan_requests_predictions").fetchone()[0])
"""


def test_plain_duckdb_client_is_told_to_redeploy_with_runtime_sql(tmp_path, loans, logistic):
    path = tmp_path / "plain.duckdb"
    with indb.connect(f"duckdb://{path}") as db:
        db.register_model("loans", logistic, sample=loans[NUMERIC])
        db.deploy("loans", table="loan_requests", runtime="onnx")
        db.sql("INSERT INTO loan_requests (income, debt, age, tenure) VALUES (52000, 9000, 35, 4.5)")
    plain = subprocess.run([sys.executable, "-c", PLAIN_CLIENT, str(path)], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert (
        "deployed with runtime onnx: redeploy with runtime='sql' to score from clients that do not load indb"
        in plain.stdout
    )
    assert (
        "model loans version 1 runs on onnxruntime: deploy it with runtime='sql' to call it from "
        "clients that do not load indb" in plain.stdout
    )
    with indb.connect(f"duckdb://{path}") as db:
        db.deploy("loans", table="loan_requests", runtime="sql")
    plain = subprocess.run([sys.executable, "-c", PLAIN_CLIENT, str(path)], capture_output=True, text=True)
    assert plain.stdout.strip() == "inserted 2", plain.stdout + plain.stderr
    with indb.connect(f"duckdb://{path}") as db:  # indb's own process still scores, both runtimes
        db.deploy("loans", table="loan_requests", runtime="onnx")
        db.sql("INSERT INTO loan_requests (income, debt, age, tenure) VALUES (1, 2, 3, 4)")
        assert int(db.sql("SELECT count(*) AS n FROM loan_requests_predictions").n[0]) == 3
        assert (
            db.sql("SELECT predict_loans(1, 2, 3, 4) AS p").p[0]
            == db.sql("SELECT prediction AS p FROM loan_requests_predictions WHERE id = 3").p[0]
        )


def test_the_plain_client_message_is_translated_in_process():
    from indb.backends.duckdb import DuckDBBackend

    backend = DuckDBBackend(":memory:")
    try:
        backend.execute("CREATE TABLE t (x DOUBLE)")
        error = None
        try:
            backend.execute(
                'SELECT "deployed with runtime onnx: redeploy (model m version 1, abc)"(x) FROM t'
            )
        except Exception as e:
            error = backend.translate(e)
        assert isinstance(error, ScoringError) and "redeploy" in str(error)
    finally:
        backend.close()


def test_missing_tables_are_not_answered_with_catalog_look_alikes(tmp_path):
    with indb.connect(f"duckdb://{tmp_path}/m.duckdb") as db:
        with pytest.raises(IndbError) as caught:
            db.sql("INSERT INTO applicants SELECT 1")
        assert "applicants does not exist" in str(caught.value) and "pg_" not in str(caught.value)
        with pytest.raises(IndbError, match='Did you mean "models"'):
            db.sql("SELECT * FROM indb.modls")  # a real near miss is still suggested

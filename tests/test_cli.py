"""The installed `indb` command, run as a user would."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import indb


def indb_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indb.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = indb_cli("demo", "--rows", "4000", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, result


def test_demo_runs_the_whole_loop_in_an_empty_folder(demo_folder):
    folder, result = demo_folder
    assert (folder / "indb.duckdb").exists()
    out = result.stdout
    for step in ("registered loans version 1", "deployed", "accuracy by week", "what is where"):
        assert step in out
    assert "streaming applications" in result.stderr and "100%" in result.stderr
    assert "this run scored with versions 1" in out


def test_demo_closes_the_loop_through_jobs(demo_folder):
    """60 streamed days from 2026-02-04: 8 Mondays 06:00 (monitor), 10 retraining runs (8 Mondays
    08:00 and the monitor's alerts), 60 daily comparisons, 9 weekly sweeps; each retraining run is
    a training run, and every promotion is in the deployment's history."""
    folder, result = demo_folder
    with indb.connect(f"duckdb://{folder}/indb.duckdb") as db:
        runs = db.sql("SELECT job, status, count(*) AS n FROM indb.job_runs GROUP BY 1, 2 ORDER BY 1")
        counts = {r["job"]: r["n"] for r in runs.to_dict("records")}
        assert set(runs.status) == {"succeeded"}
        assert counts["loans_drift"] == 8 and counts["loans_retention"] == 9
        assert counts["loans_challengers"] == 60 and counts["retrain_loans"] >= 8
        (results,) = db.sql("SELECT count(*) FROM indb.monitor_results WHERE monitor = 'loans'").iloc[0]
        assert results > 0
        training = db.sql("SELECT job_run_id FROM indb.training_runs WHERE model = 'loans'")
        assert len(training) == counts["retrain_loans"]
        history = db.sql("SELECT version, reason FROM indb.deployment_history ORDER BY id")
        assert history.version.iloc[0] == 1 and history.reason.iloc[1:].str.startswith("promote").all()
        # whatever was promoted is the version that serves now
        (serving,) = db.sql(
            "SELECT version FROM indb.deployments WHERE table_name = 'loan_applications'"
        ).iloc[0]
        assert serving == history.version.iloc[-1]
    for shown in ("job runs (the scheduler, on a simulated clock", "leaderboard", "indb.deployment_history"):
        assert shown in result.stdout


def test_models_list_show_and_sql(demo_folder):
    folder, _ = demo_folder
    listing = indb_cli("models", "list", cwd=folder)
    assert listing.returncode == 0 and "loans" in listing.stdout
    shown = indb_cli("models", "show", "loans", cwd=folder)
    assert re.search(r"loans version \d+  \[production\]", shown.stdout) and "(verified)" in shown.stdout
    query = "SELECT predict_loans(52000, 9000, 35, 4.5, 3, 'car', 'rent') AS p"
    answer = indb_cli("sql", query, cwd=folder)
    assert answer.returncode == 0 and answer.stdout.split()[-1] in ("default", "repaid")
    counted = indb_cli(
        "--db",
        f"duckdb://{folder}/indb.duckdb",
        "sql",
        "SELECT count(*) AS n FROM loan_applications_predictions",
        cwd="/",
    )
    assert int(counted.stdout.split()[-1]) > 0


def test_deploy_dry_run_and_errors(demo_folder):
    folder, _ = demo_folder
    plan = indb_cli("deploy", "loans", "--table", "more_loans", "--dry-run", cwd=folder)
    assert plan.returncode == 0 and 'CREATE TABLE "more_loans"' in plan.stdout
    deployments = indb_cli("deployments", cwd=folder)
    assert "more_loans" not in deployments.stdout and "loan_applications" in deployments.stdout
    missing = indb_cli("models", "show", "laons", cwd=folder)
    assert missing.returncode == 1 and "did you mean 'loans'" in missing.stderr
    deployed = indb_cli("deploy", "loans", "--table", "more_loans", "--version", "1", cwd=folder)
    assert deployed.returncode == 0 and "loans version 1 now scores" in deployed.stdout


def test_feature_store_commands(tmp_path):
    import pandas as pd

    import indb

    url = f"duckdb://{tmp_path}/fs.duckdb"
    with indb.connect(url) as db:
        db.create_entity("customer", keys=["customer_id"])
        rows = pd.DataFrame(
            {
                "customer_id": [1, 1, 2],
                "ts": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02"]),
                "income": [10.0, 20.0, 30.0],
            }
        )
        db.create_feature_set("finance", "customer", source=rows, event_time="ts")
        db.sql(
            "CREATE TABLE spine AS SELECT * FROM (VALUES (1, TIMESTAMP '2024-01-02', 1), "
            "(2, TIMESTAMP '2024-01-05', 0)) AS t(customer_id, event_time, label)"
        )
    listed = indb_cli("features", "list", "--db", url, cwd=tmp_path)
    assert listed.returncode == 0 and "fs_finance_v1" in listed.stdout
    shown = indb_cli("features", "training-set", "spine", "finance:income", "--db", url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert [line.split() for line in shown.stdout.splitlines()][1:] == [
        ["1", "2024-01-02", "1", "10.0"],
        ["2", "2024-01-05", "0", "30.0"],
    ]
    dry = indb_cli("features", "training-set", "spine", "finance:*", "--dry-run", "--db", url, cwd=tmp_path)
    assert "ASOF LEFT JOIN" in dry.stdout
    made = indb_cli(
        "features",
        "training-set",
        "spine",
        "finance:*",
        "--label",
        "label",
        "--name",
        "tr",
        "--db",
        url,
        cwd=tmp_path,
    )
    assert "training set tr version 1: table ts_tr_v1, 2 rows" in made.stdout, made.stderr
    ingested = indb_cli(
        "features",
        "ingest",
        "finance",
        "SELECT 3::BIGINT AS customer_id, TIMESTAMP '2024-02-01' AS ts, 5.0 AS income",
        "--db",
        url,
        cwd=tmp_path,
    )
    assert "1 rows loaded" in ingested.stdout, ingested.stderr
    stats = indb_cli("features", "stats", "finance", "--db", url, cwd=tmp_path)
    assert "income" in stats.stdout and "numeric" in stats.stdout
    bad = indb_cli("features", "training-set", "spine", "finanse:income", "--db", url, cwd=tmp_path)
    assert bad.returncode == 1 and "did you mean 'finance'" in bad.stderr


# -- issue 11.16: errors a new user met, and the commands the CLI lacked -----------------------


def indb_main(*args: str, cwd) -> subprocess.CompletedProcess:
    """``indb ...`` run in this process (a subprocess per command costs seconds on a busy box)."""
    import contextlib
    import io
    import os

    from indb.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(params=["duckdb", "postgresql"])
def url(request, tmp_path):
    """An empty indb database URL on each backend (PostgreSQL: a fresh database per test)."""
    if request.param == "duckdb":
        yield f"duckdb://{tmp_path}/cli.duckdb"
        return
    import uuid

    import psycopg

    from tests.conftest import pg_database

    dsn, template = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_template")
    name = f"indb_cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield pg_database(dsn, name)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_bad_dialect_and_url_are_one_line_errors(tmp_path):
    import indb

    url = f"duckdb://{tmp_path}/e.duckdb"
    with indb.connect(url) as db:
        from sklearn.linear_model import LinearRegression

        from tests.conftest import NUMERIC, loan_frame

        rows = loan_frame(200)
        db.register_model("loss", LinearRegression().fit(rows[NUMERIC], rows.loss), sample=rows[NUMERIC])
    bad = indb_cli(
        "models", "sql", "loss", "--dialect", "sqlserver", "--db", url, cwd=tmp_path
    )  # real process
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "unknown SQL dialect 'sqlserver': use one of" in bad.stderr and "postgres" in bad.stderr
    good = indb_main("models", "sql", "loss", "--dialect", "spark", "--db", url, cwd=tmp_path)
    assert good.returncode == 0 and "-- prediction" in good.stdout
    for wrong in ("sqlite:///tmp/x.db", "sqlite://x.db"):
        refused = indb_main("models", "list", "--db", wrong, cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "unknown database URL scheme 'sqlite'" in refused.stderr and "postgresql://" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.duckdb"]  # no x.db made


def test_register_deploy_monitor_transform_undeploy_from_the_cli(url, tmp_path):
    import json

    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import indb
    from indb.udfs import convert
    from tests.conftest import NUMERIC, loan_frame

    rows = loan_frame(400)
    # A regressor: classifiers exported as ONNX bytes lose their classes (issue 11.12, registry).
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(rows[NUMERIC], rows.loss)
    (tmp_path / "loans.onnx").write_bytes(convert.from_sklearn(model, rows[NUMERIC]).SerializeToString())
    rows[NUMERIC].to_csv(tmp_path / "sample.csv", index=False)
    rows[NUMERIC].to_parquet(tmp_path / "sample.parquet")

    run = lambda *args: indb_main(*args, "--db", url, cwd=tmp_path)  # noqa: E731
    made = indb_cli("models", "register", "loans", "--onnx", "loans.onnx", "--sample", "sample.csv",
                    "--tags", '{"team": "credit"}', "--db", url, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "registered loans version 1" in made.stdout and "100%" in made.stderr
    made = run("models", "register", "loans", "--onnx", "loans.onnx", "--sample", "sample.csv",
               "--tags", '{"team": "credit"}')  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "registered loans version 2" in made.stdout and "100%" in made.stderr
    # Both versions get tags: a NULL next to a value comes back as NaN (registry._from_row, pandas 3).
    again = run("models", "register", "loans", "--onnx", "loans.onnx", "--sample", "sample.parquet",
                "--tags", "{}")  # fmt: skip
    assert "registered loans version 3" in again.stdout, again.stderr
    bad = run("models", "register", "x", "--onnx", "loans.onnx", "--sample", "sample.txt")
    assert bad.returncode == 1 and "give a .csv or .parquet file" in bad.stderr
    listed = json.loads(run("models", "list", "--json").stdout)
    assert [(m["name"], m["versions"], m["latest_version"]) for m in listed] == [("loans", 3, 3)]
    shown = run("models", "show", "loans", "--json")
    assert shown.returncode == 0, shown.stderr
    shown = json.loads(shown.stdout)
    assert [v["version"] for v in shown] == [1, 2, 3] and shown[0]["tags"] == {"team": "credit"}

    deployed = run("deploy", "loans", "--table", "loan_requests", "--runtime", "sql")
    assert deployed.returncode == 0, deployed.stderr
    with indb.connect(url) as db:
        db.write_table("batch", rows[NUMERIC])
        db.sql(f"INSERT INTO loan_requests ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM batch")
    (deployment,) = json.loads(run("deployments", "--json").stdout)
    assert deployment["table_name"] == "loan_requests" and deployment["version"] == 3
    assert deployment["runtime"] == "sql" and deployment["explains"] == "no"
    created = run("monitor", "create", "drift", "loan_requests", "--reference-query",
                  "SELECT * FROM loan_requests_scored", "--window", "6 hours",
                  "--thresholds", '{"psi": 0.3}')  # fmt: skip
    assert created.returncode == 0, created.stderr
    (monitor,) = json.loads(run("monitor", "list", "--json").stdout)
    assert monitor["name"] == "drift" and monitor["deployment"] == "loan_requests"
    assert run("monitor", "create", "m2", "loan_requests").returncode == 1  # no reference
    checks = json.loads(run("doctor", "--json").stdout)
    assert {"name", "ok", "detail", "fix"} == set(checks[0]) and checks[0]["ok"] is True
    answer = json.loads(run("sql", "SELECT count(*) AS n FROM loan_requests_predictions", "--json").stdout)
    assert answer == [{"n": 400}]
    inserted = run("insert", "loan_requests", "sample.csv")
    assert inserted.returncode == 0 and "400 rows inserted into loan_requests" in inserted.stdout, (
        inserted.stderr
    )
    assert run("insert", "loan_requests", "sample.parquet").returncode == 0
    assert run("insert", "loan_requests", f"SELECT {', '.join(NUMERIC)} FROM batch LIMIT 10").returncode == 0
    rows.assign(extra=1)[[*NUMERIC, "extra"]].to_csv(tmp_path / "extra.csv", index=False)
    refused = run("insert", "loan_requests", "extra.csv")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "has no column 'extra'" in refused.stderr and "nothing was inserted" in refused.stderr
    missing = run("insert", "loan_requests", "gone.parquet")
    assert missing.returncode == 1 and "cannot read 'gone.parquet': no such file" in missing.stderr
    counted = "SELECT (SELECT count(*) FROM loan_requests) AS n, count(*) AS p FROM loan_requests_predictions"
    assert json.loads(run("sql", counted, "--json").stdout) == [{"n": 1210, "p": 1210}]

    scaler = make_pipeline(SimpleImputer(), StandardScaler()).fit(rows[NUMERIC])
    (tmp_path / "scale.onnx").write_bytes(convert.from_sklearn(scaler, rows[NUMERIC]).SerializeToString())
    made = run("transforms", "register", "scaled", "--onnx", "scale.onnx", "--sample", "sample.csv",
               "--source", "batch")  # fmt: skip
    assert made.returncode == 0 and "view scaled over batch" in made.stdout, made.stderr
    (listed,) = json.loads(run("transforms", "list", "--json").stdout)
    assert listed["name"] == "scaled" and listed["source"] == "batch"
    with indb.connect(url) as db:
        got = db.sql("SELECT * FROM scaled")[["scaled_0", "scaled_3"]].to_numpy()
    np.testing.assert_allclose(got, scaler.transform(rows[NUMERIC])[:, [0, 3]], rtol=1e-6, atol=1e-6)
    dropped = run("transforms", "drop", "scaled")
    assert dropped.returncode == 0 and json.loads(run("transforms", "list", "--json").stdout) == []

    with indb.connect(url) as db:
        db.drop_monitor("drift")
    gone = run("undeploy", "loan_requests", "--drop-tables")
    assert gone.returncode == 0 and "no longer scored" in gone.stdout, gone.stderr
    assert json.loads(run("deployments", "--json").stdout) == []
    assert run("sql", "SELECT * FROM loan_requests").returncode == 1

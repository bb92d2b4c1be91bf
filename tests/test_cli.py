"""The installed `indb` command, run as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest


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
    # Versions 1 and 2 both scored rows: the demo retrains and switches mid-stream.
    assert "versions 1 and 2" in out


def test_models_list_show_and_sql(demo_folder):
    folder, _ = demo_folder
    listing = indb_cli("models", "list", cwd=folder)
    assert listing.returncode == 0 and "loans" in listing.stdout
    shown = indb_cli("models", "show", "loans", cwd=folder)
    assert "loans version 2  [production]" in shown.stdout and "(verified)" in shown.stdout
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

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

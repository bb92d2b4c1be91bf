"""``indb jobs ...``: add, list, show, run, history, enable, disable, remove, run-due, --dry-run."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess

import pytest

import indb
from tests.test_jobs_scheduler import _make_due, register_test_actions

register_test_actions()


def cli(*args: str) -> subprocess.CompletedProcess:
    """``indb ...`` in this process, where the test actions are registered."""
    from indb.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def url(tmp_path):
    return f"duckdb://{tmp_path / 'cli.duckdb'}"


def test_add_list_show_run_history(url):
    added = cli(
        "jobs", "add", "count", "--db", url, "--schedule", "*/15 * * * *", "--action", "test_noop",
        "--arg", "n=5", "--retries", "2", "--comment", "five rows",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert 'job count: test_noop {"n": 5}; next run' in added.stdout
    listed = json.loads(cli("jobs", "list", "--db", url, "--json").stdout)
    assert [(j["name"], j["schedule"], j["enabled"]) for j in listed] == [("count", "*/15 * * * *", True)]
    ran = cli("jobs", "run", "count", "--db", url)
    assert ran.returncode == 0 and "job count: run 1 succeeded (attempt 1, manual)" in ran.stdout
    history = json.loads(cli("jobs", "history", "count", "--db", url, "--json").stdout)
    assert [(r["status"], r["rows_affected"], r["runner"]) for r in history] == [("succeeded", 5, "manual")]
    shown = json.loads(cli("jobs", "show", "count", "--db", url, "--json").stdout)
    assert shown["retries"] == 2 and shown["comment"] == "five rows" and len(shown["runs"]) == 1
    text = cli("jobs", "show", "count", "--db", url).stdout
    assert "retries               2" in text and "succeeded" in text


def test_a_failing_run_exits_1_with_its_error(url):
    cli(
        "jobs",
        "add",
        "bad",
        "--db",
        url,
        "--schedule",
        "@daily",
        "--action",
        "test_fail",
        "--arg",
        "message=no source",
    )
    ran = cli("jobs", "run", "bad", "--db", url, "--json")
    assert ran.returncode == 1
    assert json.loads(ran.stdout)[0]["error"] == "RuntimeError: no source"


def test_dry_runs_show_sql_with_parameters_apart_and_change_nothing(url):
    dry = cli("jobs", "add", "j", "--db", url, "--schedule", "@daily", "--action", "test_noop", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    sql, _, params = dry.stdout.partition("-- parameters: ")
    assert sql.startswith("INSERT INTO indb.jobs") and "'j'" not in sql and "$name" in sql
    assert json.loads(params.splitlines()[0])["name"] == "j"
    assert json.loads(cli("jobs", "list", "--db", url, "--json").stdout) == []
    cli("jobs", "add", "j", "--db", url, "--schedule", "@daily", "--action", "test_noop")
    for verb, words in (("disable", "UPDATE indb.jobs SET enabled"), ("remove", "DELETE FROM indb.jobs")):
        shown = cli("jobs", verb, "j", "--db", url, "--dry-run")
        assert shown.returncode == 0 and shown.stdout.startswith(words) and "-- parameters:" in shown.stdout
    listed = json.loads(cli("jobs", "list", "--db", url, "--json").stdout)
    assert [j["enabled"] for j in listed] == [True]


def test_enable_disable_remove(url):
    cli("jobs", "add", "j", "--db", url, "--schedule", "@hourly", "--action", "test_noop", "--disabled")
    assert json.loads(cli("jobs", "list", "--db", url, "--json").stdout)[0]["enabled"] is False
    assert cli("jobs", "enable", "j", "--db", url).stdout.strip() == "job j: enabled"
    assert json.loads(cli("jobs", "list", "--db", url, "--json").stdout)[0]["next_run"] is not None
    assert cli("jobs", "disable", "j", "--db", url).stdout.strip() == "job j: disabled"
    assert cli("jobs", "remove", "j", "--db", url).returncode == 0
    missing = cli("jobs", "remove", "j", "--db", url)
    assert missing.returncode == 1 and "job 'j' does not exist" in missing.stderr


def test_on_alert_and_bad_input(url):
    on_alert = ("--on-alert", "monitor=loans,metric=psi")
    made = cli("jobs", "add", "react", "--db", url, "--action", "test_noop", *on_alert)
    assert made.returncode == 0, made.stderr
    assert "no scheduled run" in made.stdout
    with indb.connect(url) as db:
        assert db.job("react").on_alert == {"monitor": "loans", "metric": "psi"}
    for args, words in (
        (("--schedule", "* * *", "--action", "test_noop"), "has 3 field(s)"),
        (("--schedule", "@daily", "--action", "test_noop", "--arg", "n"), "--arg 'n' is not KEY=VALUE"),
        (("--schedule", "@daily", "--action", "test_noop", "--on-alert", "loans"), "expected monitor=NAME"),
        (("--schedule", "@daily", "--action", "test_noop", "--timezone", "UTC+2"), "unknown time zone"),
    ):
        result = cli("jobs", "add", "other", "--db", url, *args)
        assert result.returncode == 1 and words in result.stderr, result.stderr


def test_run_due(url):
    cli(
        "jobs",
        "add",
        "count",
        "--db",
        url,
        "--schedule",
        "0 0 1 1 *",
        "--action",
        "test_noop",
        "--arg",
        "n=3",
    )
    assert cli("jobs", "run-due", "--db", url).stdout.strip() == "nothing due"
    with indb.connect(url) as db:
        _make_due(db, "count")
    due = cli("jobs", "run-due", "--db", url, "--json")
    assert due.returncode == 0, due.stderr
    assert [(r["job"], r["status"], r["reason"]) for r in json.loads(due.stdout)] == [
        ("count", "succeeded", "schedule")
    ]
    assert cli("jobs", "run-due", "--db", url).stdout.strip() == "nothing due"

"""indb.connect(): URLs, the catalog, db.sql()."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

import indb
from indb.catalog import CATALOG_VERSION
from indb.sql import migrations as all_migrations


def test_default_is_indb_duckdb_in_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INDB_URL", raising=False)
    with indb.connect() as db:
        # The file is called indb.duckdb and the schema indb: both must stay usable.
        assert db.sql("SELECT count(*) AS n FROM indb.models").n[0] == 0
        db.sql("CREATE TABLE t (x INTEGER)")
    assert (tmp_path / "indb.duckdb").exists()
    with indb.connect() as db:
        assert "t" in set(db.sql("SHOW TABLES").name)


def test_indb_url_environment_variable(tmp_path, monkeypatch):
    target = tmp_path / "from_env.duckdb"
    monkeypatch.setenv("INDB_URL", f"duckdb://{target}")
    with indb.connect() as db:
        assert db.url.endswith("from_env.duckdb")
    assert target.exists()


def test_memory_database_is_private_to_its_connection():
    with indb.connect("duckdb:///:memory:") as first, indb.connect("duckdb:///:memory:") as other:
        first.sql("CREATE TABLE only_here (x INTEGER)")
        assert (
            other.sql("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'only_here'").n[
                0
            ]
            == 0
        )


def test_catalog_is_created_once_and_upgraded_idempotently(tmp_path):
    url = f"duckdb://{tmp_path}/c.duckdb"
    for _ in range(3):
        with indb.connect(url) as db:
            assert db.schema_version == CATALOG_VERSION
            migrations = db.sql("SELECT version FROM indb.schema_migrations ORDER BY version")
            assert list(migrations.version) == [m.version for m in all_migrations()]
    tables = set(
        duckdb.connect(str(tmp_path / "c.duckdb"))
        .execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'indb'")
        .df()
        .table_name
    )
    assert {"models", "model_versions", "model_aliases", "deployments", "audit_log"} <= tables


def test_a_catalog_upgraded_by_a_newer_indb_is_refused_and_left_as_it_was(tmp_path, logistic, loans):
    """An older indb must not re-create triggers a newer one changed: it refuses to connect."""
    url = f"duckdb://{tmp_path}/newer.duckdb"
    with indb.connect(url) as db:
        db.register_model("lr", logistic, sample=loans[["income", "debt", "age", "tenure"]])
        db.deploy("lr", table="requests")
        db.sql("INSERT INTO indb.schema_migrations (version, name) VALUES (9999, 'from_the_future')")
        before = db.sql("SELECT trigger_name, sql FROM duckdb_triggers() ORDER BY 1")
    with pytest.raises(indb.DatabaseError, match=r"upgraded by a newer indb.*\[9999\].*Nothing was changed"):
        indb.connect(url)
    doctor = subprocess.run(
        [sys.executable, "-m", "indb.cli", "doctor", "--db", url], capture_output=True, text=True, timeout=120
    )
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr
    assert (
        "FIX  catalog" in doctor.stdout
        and "[9999]" in doctor.stdout
        and "pip install --upgrade indb" in doctor.stdout
    )
    con = duckdb.connect(str(tmp_path / "newer.duckdb"))
    try:
        after = con.execute("SELECT trigger_name, sql FROM duckdb_triggers() ORDER BY 1").df()
        assert after.equals(before)
        con.execute("DELETE FROM indb.schema_migrations WHERE version = 9999")
    finally:
        con.close()
    with indb.connect(url) as db:  # the same indb as the catalog's: accepted again
        assert db.schema_version == CATALOG_VERSION


def test_sql_binds_parameters_and_returns_frames(db):
    db.sql("CREATE TABLE people (name VARCHAR, age INTEGER)")
    assert db.sql("INSERT INTO people VALUES ($name, $age)", {"name": "o'brien", "age": 40}) is None
    db.sql("INSERT INTO people VALUES (?, ?)", ["x; DROP TABLE people; --", 3])
    frame = db.sql("SELECT name, age FROM people WHERE age > $min ORDER BY age", {"min": 1})
    assert list(frame.name) == ["x; DROP TABLE people; --", "o'brien"]
    assert db.sql("CREATE TABLE other (x INTEGER)") is None


def test_unknown_url_scheme_is_refused():
    with pytest.raises(indb.IndbError, match="unknown database URL"):
        indb.connect("mysql://somewhere/db")


def test_two_connections_to_one_file_share_models(tmp_path, logistic, loans):
    url = f"duckdb://{tmp_path}/shared.duckdb"
    with indb.connect(url) as first, indb.connect(url) as second:
        first.register_model("lr", logistic, sample=loans[["income", "debt", "age", "tenure"]])
        result = second.sql("SELECT predict_lr(50000.0, 1000.0, 30, 2.0) AS p")
        assert result.p[0] in ("default", "repaid")


def test_closing_twice_leaves_other_connections_to_the_file_open(tmp_path):
    """A second close released the shared DuckDB instance again (KeyError, or the file
    detached under another open connection)."""
    url = f"duckdb://{tmp_path}/x.duckdb"
    first, second = indb.connect(url), indb.connect(url)
    first.close()
    first.close()
    assert second.sql("SELECT 42 AS answer").answer[0] == 42
    second.close()


def test_a_relative_path_closes_after_the_process_changed_directory(tmp_path, monkeypatch):
    """Closing uses the file resolved at connect: `indb ui` stopped after its folder was
    removed, or any process that changed directory, still detaches the right file."""
    (tmp_path / "here").mkdir()
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(tmp_path / "here")
    db = indb.connect("duckdb://relative.duckdb")
    db.sql("CREATE TABLE kept AS SELECT 42 AS answer")
    monkeypatch.chdir(gone)
    gone.rmdir()  # the working directory no longer exists: abspath() would fail now
    db.close()
    monkeypatch.chdir(tmp_path / "here")
    with indb.connect("duckdb://relative.duckdb") as again:  # the file was detached, not leaked
        assert again.sql("SELECT answer FROM kept").answer[0] == 42

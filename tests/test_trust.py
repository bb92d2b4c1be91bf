"""Issue 10 on both backends: the audit chain, the actor, content hashes, connect with mixed models."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys

import indb
from indb import audit, registry
from tests.conftest import NUMERIC


def _verify(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indb.cli", "audit", "verify", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_audit_rows_are_chained_and_verify_passes(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.set_alias("m", "staging", 1)
    db.deploy("m", table="requests")
    log = db.sql("SELECT id, prev_hash, row_hash FROM indb.audit_log ORDER BY id")
    assert len(log) >= 3 and log.row_hash.notna().all()
    assert list(log.prev_hash[1:]) == list(log.row_hash[:-1])
    result = audit.verify(db.backend)
    assert result.ok and result.head == log.row_hash.iloc[-1], str(result)


def test_duckdb_audit_edit_is_detected_by_verify(logistic, loans, tmp_path):
    url = f"duckdb://{tmp_path}/audit.duckdb"
    with indb.connect(url) as db:
        db.register_model("m", logistic, sample=loans[NUMERIC])
        db.deploy("m", table="requests")
    assert _verify(url).returncode == 0
    with indb.connect(url) as db:
        db.sql("UPDATE indb.audit_log SET actor = 'someone else' WHERE action = 'register_model'")
    out = _verify(url)
    assert out.returncode == 2 and "was changed after it was logged" in out.stdout, out.stdout
    with indb.connect(url) as again:
        again.sql("DELETE FROM indb.audit_log WHERE action = 'register_model'")
        again.sql("UPDATE indb.audit_log SET actor = actor")  # no-op writes leave the chain intact
    out = _verify(url)
    assert out.returncode == 2 and "the rows before it were removed" in out.stdout, out.stdout


def test_duckdb_actor_is_the_os_user_not_logname(logistic, loans, monkeypatch, tmp_path):
    import pwd

    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("USER", "mallory")
    assert getpass.getuser() == "mallory"
    with indb.connect(f"duckdb://{tmp_path}/actor.duckdb") as db:
        db.register_model("m", logistic, sample=loans[NUMERIC])
        actors = set(db.sql("SELECT actor FROM indb.audit_log").actor)
    assert actors == {pwd.getpwuid(os.getuid()).pw_name}


def test_content_hash_covers_bytes_signature_classes_and_recipe(db, logistic, loans):
    mv = db.register_model("m", logistic, sample=loans[NUMERIC])
    row = db.sql(
        "SELECT sha256, CAST(inputs AS VARCHAR) AS inputs, CAST(outputs AS VARCHAR) AS outputs, "
        "CAST(classes AS VARCHAR) AS classes, CAST(recipe AS VARCHAR) AS recipe, content_hash "
        "FROM indb.model_versions"
    ).iloc[0]
    parts = [row.sha256, row.inputs, row.outputs, row.classes, row.recipe]
    assert registry.content_hash(*parts) == row.content_hash == mv.content_hash
    for i in range(len(parts)):
        changed = list(parts)
        changed[i] = changed[i] + " "
        assert registry.content_hash(*changed) != row.content_hash


def test_connect_with_a_classifier_and_a_regressor(logistic, boosted_regressor, loans, tmp_path):
    """10.8: pandas 3 reads a regressor's NULL classes as NaN beside a classifier's."""
    url = f"duckdb://{tmp_path}/mixed.duckdb"
    with indb.connect(url) as db:
        db.register_model("m", logistic, sample=loans[NUMERIC])
        db.register_model("loss", boosted_regressor, sample=loans[NUMERIC])
    with indb.connect(url) as again:
        assert [v.classes for v in again.model_versions("loss")] == [None]
        assert again.get_model("loss").classes is None

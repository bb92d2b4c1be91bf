"""Deployments and aliases (issue 11.8): a deployment made by alias follows it (set_alias
redeploys it in the same transaction); one made by version stays pinned, and indb warns when
production moves away from it. `indb deployments` shows which is which."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

import indb
from indb.registry import AliasWarning
from tests.conftest import NUMERIC

COLUMNS = ", ".join(NUMERIC)
ROW = "(52000, 9000, 35, 4.5)"


@pytest.fixture
def two_versions(db, logistic, forest, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("m", logistic, sample=loans[NUMERIC].head(300))
    return db


def _deployment(db, table: str) -> dict:
    row = db.deployments().set_index("table_name").loc[table]
    production = row.production_version
    return {
        "version": int(row.version),
        "alias": None if row.follows == "pinned" else row.follows,
        "production": None if pd.isna(production) else int(production),
    }


def _scored_versions(db, table: str) -> list[int]:
    frame = db.sql(f"SELECT model_version FROM {table}_predictions ORDER BY id")
    return [int(v) for v in frame.model_version]


def test_a_deployment_by_alias_follows_it(two_versions):
    db = two_versions
    db.set_alias("m", "production", 1)
    db.deploy("m", table="requests", version="production")
    assert _deployment(db, "requests") == {"version": 1, "alias": "production", "production": 1}
    db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AliasWarning)  # a follower moves without warnings
        db.set_alias("m", "production", 2)
    assert _deployment(db, "requests") == {"version": 2, "alias": "production", "production": 2}
    assert db.deployment("requests").version == 2
    db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
    assert _scored_versions(db, "requests") == [1, 2]
    audit = db.sql("SELECT details FROM indb.audit_log WHERE action = 'set_alias' ORDER BY id").details
    last = audit.iloc[-1]
    assert (last if isinstance(last, dict) else json.loads(last))["deployments_moved"] == ["requests"]


def test_a_deployment_by_version_stays_pinned_and_warns(two_versions):
    db = two_versions
    db.set_alias("m", "production", 1)
    db.deploy("m", table="requests", version=1)
    assert _deployment(db, "requests")["alias"] is None
    with pytest.warns(
        AliasWarning, match=r"'requests' is pinned to m version 1 .* production names version 2"
    ):
        db.set_alias("m", "production", 2)
    assert _deployment(db, "requests") == {"version": 1, "alias": None, "production": 2}
    db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
    assert _scored_versions(db, "requests") == [1]
    # deploying by version against production also warns
    with pytest.warns(AliasWarning, match="pinned to m version 1"):
        db.deploy("m", table="other", version="1")


def test_no_version_follows_production_when_there_is_one(two_versions):
    db = two_versions
    with warnings.catch_warnings():
        warnings.simplefilter("error", AliasWarning)
        db.deploy("m", table="latest")  # no production alias: pinned to the latest version
    assert _deployment(db, "latest") == {"version": 2, "alias": None, "production": None}
    with pytest.warns(AliasWarning, match="'latest' is pinned to m version 2"):
        db.set_alias("m", "production", 1)
    db.deploy("m", table="default")
    assert _deployment(db, "default") == {"version": 1, "alias": "production", "production": 1}
    db.set_alias("m", "production", 2)
    assert _deployment(db, "default")["version"] == 2


def test_other_aliases_are_followed_and_removing_one_pins(two_versions):
    db = two_versions
    db.set_alias("m", "staging", 1)
    db.deploy("m", table="shadow", version="staging")
    db.set_alias("m", "staging", 2)
    assert _deployment(db, "shadow") == {"version": 2, "alias": "staging", "production": None}
    with pytest.warns(AliasWarning, match="'shadow' followed alias 'staging'.*pinned to version 2"):
        db.remove_alias("m", "staging")
    assert _deployment(db, "shadow") == {"version": 2, "alias": None, "production": None}
    db.set_alias("m", "staging", 1)
    assert _deployment(db, "shadow")["version"] == 2


def test_an_alias_a_follower_cannot_take_is_not_moved(db, logistic, boosted_regressor, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    db.register_model("m", boosted_regressor, sample=loans[NUMERIC])  # predicts DOUBLE, not labels
    db.set_alias("m", "production", 1)
    db.deploy("m", table="requests", version="production")
    with pytest.raises(
        indb.DeploymentError, match=r"alias 'production' of model 'm' was not moved.*'requests'"
    ):
        db.set_alias("m", "production", 2)
    assert db.get_model("m", "production").version == 1
    assert _deployment(db, "requests") == {"version": 1, "alias": "production", "production": 1}
    db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES {ROW}")
    assert _scored_versions(db, "requests") == [1]
    assert db.sql(f"SELECT predict_m{ROW} AS p").p.iloc[0] in ("default", "repaid")


def test_cli_deployments_shows_the_rule(tmp_path, logistic, loans):
    import subprocess
    import sys

    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        db.register_model("m", logistic, sample=loans[NUMERIC])
        db.register_model("m", logistic, sample=loans[NUMERIC].head(300))
        db.set_alias("m", "production", 1)
        db.deploy("m", table="follows", version="production")
        db.deploy("m", table="pinned", version=1)
    shown = subprocess.run(
        [sys.executable, "-m", "indb.cli", "deployments", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    header, *rows = [line.split() for line in shown.stdout.splitlines()]
    assert header[:5] == ["table_name", "model", "version", "follows", "production_version"]
    assert [r[:5] for r in rows] == [
        ["follows", "m", "1", "production", "1"],
        ["pinned", "m", "1", "pinned", "1"],
    ]

"""Lineage you can query (issue 14.4) on both backends: indb.lineage reaches a retrained
version's feature set versions, `indb lineage` prints it as a tree, and db.reproduce refits a
version from its lineage and names the training data when rows under the cutoff changed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import indb
from tests.test_cli import indb_cli
from tests.test_lifecycle_training import arrive, loop  # noqa: F401  (the loop fixture)


def _retrained(db, recipe=None, seed=None):
    db.create_retraining("risk", training_set="risk_train", holdout="20%", metric="auc")
    arrive(db, 1, 300)
    run = db.retrain("risk", recipe=recipe, seed=seed)
    assert run.status == "succeeded", run.error
    return run


def _edges(db) -> set[tuple]:
    frame = db.sql(
        "SELECT from_kind, from_name, from_version, relation, to_kind, to_name, to_version FROM indb.lineage"
    )
    return {
        tuple(None if pd.isna(v) else (v if isinstance(v, str) else int(v)) for v in row)
        for row in frame.itertuples(index=False)
    }


def test_lineage_of_a_retrained_version_reaches_its_feature_set_versions(loop):  # noqa: F811
    db = loop
    run = _retrained(db)
    edges = _edges(db)
    assert ("model", "risk", 3, "trained_by", "training_run", "risk", run.id) in edges
    assert ("training_run", "risk", run.id, "trained_on", "training_set", "risk_train", 2) in edges
    assert ("training_set", "risk_train", 2, "built_from", "feature_set", "profile", 1) in edges
    assert ("model", "risk", 3, "parent", "model", "risk", 2) in edges
    assert ("model", "risk", 2, "trained_on", "training_set", "risk_train", 1) in edges
    assert ("deployment", "risk_requests", None, "serves", "model", "risk", 2) in edges
    assert ("deployment", "risk_requests", None, "served", "model", "risk", 1) in edges

    # the same in one recursive query a user could write: from the version down to feature sets
    reached = db.sql(
        "WITH RECURSIVE up(kind, name, version) AS ("
        " SELECT 'model', 'risk', CAST(3 AS BIGINT)"
        " UNION SELECT l.to_kind, l.to_name, l.to_version FROM indb.lineage AS l"
        " JOIN up ON l.from_kind = up.kind AND l.from_name = up.name AND l.from_version = up.version"
        " WHERE l.relation <> 'parent')"
        " SELECT name, version FROM up WHERE kind = 'feature_set'"
    )
    assert reached.values.tolist() == [["profile", 1]]

    tree = db.lineage("risk", 3)
    (trained_by,) = [e for e in tree["upstream"] if e["relation"] == "trained_by"]
    (training_set,) = trained_by["upstream"]
    assert (training_set["name"], training_set["version"]) == ("risk_train", 2)
    assert ("feature_set", "profile", 1) in {
        (e["kind"], e["name"], e["version"]) for e in training_set["upstream"]
    }
    assert tree["downstream"] == []  # v3 is not deployed and nothing was retrained from it
    below_v2 = db.lineage("risk", 2)["downstream"]
    assert {(e["relation"], e["kind"], e["name"], e["version"]) for e in below_v2} >= {
        ("serves", "deployment", "risk_requests", None),
        ("retrained_into", "model", "risk", 3),
    }
    with pytest.raises(indb.IndbError, match="risk"):
        db.lineage("risk", 9)

    # prediction rows -> version and feature values: the predictions table, as documented
    scored = db.sql(
        "SELECT p.model_version, count(*) AS n, count(p.income) AS incomes, count(p.debt) AS debts "
        "FROM risk_requests_predictions AS p JOIN risk_requests AS r ON r.id = p.id "
        "GROUP BY p.model_version ORDER BY p.model_version"
    )
    assert scored.model_version.tolist() == [1, 2]
    assert (scored.n == scored.incomes).all() and (scored.n == scored.debts).all()


def test_cli_prints_the_lineage_tree(loop, tmp_path):  # noqa: F811
    db = loop
    _retrained(db)
    url = db.url
    db.close()  # DuckDB: one process at a time on the file
    done = indb_cli("lineage", "--db", url, "risk@3", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "model risk@3"
    text = done.stdout
    assert "trained_by -> training_run risk #" in text
    assert "    trained_on -> training_set risk_train@2" in text
    assert "      built_from -> feature_set profile@1" in text
    assert "parent -> model risk@2" in text
    done = indb_cli("lineage", "--db", url, "risk@2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout)
    assert {"relation": "retrained_into", "kind": "model", "name": "risk", "version": 3} in [
        {k: e[k] for k in ("relation", "kind", "name", "version")} for e in found["downstream"]
    ]
    done = indb_cli("reproduce", "--db", url, "risk@3", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["matches"] is True
    done = indb_cli("lineage", "--db", url, "nope@1", cwd=tmp_path)
    assert done.returncode == 1 and "nope" in done.stderr, done.stdout + done.stderr


def _catalog_counts(db) -> tuple:
    return tuple(
        int(db.sql(f"SELECT count(*) AS n FROM indb.{t}").n[0])
        for t in ("model_versions", "training_sets", "training_runs")
    )


@pytest.mark.parametrize("recipe", ["logistic", "boosting"])
def test_reproduce_matches_the_hash_of_a_deterministic_recipe(loop, recipe):  # noqa: F811
    from sklearn.ensemble import GradientBoostingClassifier

    db = loop
    # a version registered by hand with training_set= is refitted on its whole training set
    by_hand = db.reproduce("risk", 2)
    assert by_hand.matches, by_hand.reason
    assert by_hand.training_run is None and by_hand.fit_rows == by_hand.rows == 300
    if recipe == "logistic":
        run = _retrained(db)
    else:
        run = _retrained(db, recipe=GradientBoostingClassifier(n_estimators=15, random_state=0), seed=7)
        assert db.training_run(run.id)["recipe"]["seed"] == 7
    before = _catalog_counts(db)
    result = db.reproduce("risk", 3)
    assert result.matches, result.reason
    assert result.changed is None and result.sha256 == db.get_model("risk", 3).sha256
    assert (result.training_set, result.training_set_version, result.training_run) == (
        "risk_train",
        2,
        run.id,
    )
    assert result.content_hash == result.stored_content_hash
    assert result.fit_rows < result.rows  # the holdout the run kept out is kept out again
    assert _catalog_counts(db) == before  # nothing registered, no training set version kept

    # its training set recorded no cutoff: the rows that arrived since make it differ now
    later = db.reproduce("risk", 2)
    assert later.changed == "data" and later.rows == 600 and "no cutoff" in later.reason


def test_reproduce_names_the_training_data_when_rows_under_the_cutoff_changed(loop):  # noqa: F811
    db = loop
    _retrained(db)
    (history,) = db.sql("SELECT table_name FROM indb.feature_sets WHERE name = 'profile'").table_name
    db.sql(f'UPDATE "{history}" SET income = income * 3 + 40 WHERE customer_id < 40')
    before = _catalog_counts(db)
    result = db.reproduce("risk", 3)
    assert not result.matches and result.changed == "data"
    assert "training data changed" in result.reason and "risk_train" in result.reason
    assert result.content_hash != result.stored_content_hash
    assert _catalog_counts(db) == before
    with pytest.raises(indb.IndbError, match="no recorded training set"):
        db.reproduce("risk", 1)


def test_reproduce_names_the_recipe_when_the_stored_recipe_was_edited(loop):  # noqa: F811
    db = loop
    _retrained(db)
    recipe = db.get_model("risk", 3).recipe
    recipe["estimator"]["params"]["C"] = 0.01
    db.sql(
        "UPDATE indb.model_versions SET recipe = $recipe WHERE model = 'risk' AND version = 3",
        {"recipe": json.dumps(recipe)},
    )
    result = db.reproduce("risk", 3)
    assert not result.matches and result.changed == "recipe", result.reason
    assert result.content_hash == result.stored_content_hash

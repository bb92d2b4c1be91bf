"""Deployments' triggers are built by ``Backend.trigger_sql`` like feature sets' and humility
rules' (issue 10.2), and the SQL a trigger runs is rendered once from trees: the features a
``features_from`` deployment joins are stored as the finished relation, not a template the
runtime fills in with text substitution. Both backends, real databases."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

import indb
from tests.conftest import NUMERIC
from tests.test_feature_store import brute_latest
from tests.test_feature_store_fixes import customer_rows

RUNTIME_SOURCE = Path(importlib.util.find_spec("indb.udfs.plpython_runtime").origin)


@pytest.fixture
def store(db):
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=customer_rows(), event_time="ts")
    return db


def _risk_model(store):
    from sklearn.linear_model import LogisticRegression

    rows = customer_rows()
    model = LogisticRegression(max_iter=500).fit(rows[["income", "debt"]], rows.income > 50_000)
    store.register_model("risk", model, sample=rows[["income", "debt"]])
    return rows, model


@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_stored_features_are_rendered_sql_without_placeholders(store, runtime):
    if runtime == "onnx" and not store.backend.runs_onnx:
        pytest.skip("no onnxruntime in this database")
    rows, model = _risk_model(store)
    store.deploy("risk", table="risk_requests", runtime=runtime, features_from="finance")
    ((text,),) = store.backend.rows(
        "SELECT features FROM indb.deployments WHERE table_name = 'risk_requests'"
    )
    text = text if isinstance(text, str) else json.dumps(text)
    assert "{rows}" not in text and "{" not in json.loads(text)["relation"]
    relation = json.loads(text)["relation"]
    assert "new_rows" in relation and relation.endswith("AS indb_request")
    store.sql("INSERT INTO risk_requests (customer_id) VALUES (3), (5)")
    # written while undeployed, then scored by the backfill of the next deploy, with features
    store.undeploy("risk_requests")
    store.sql("INSERT INTO risk_requests (customer_id) VALUES (7)")
    store.deploy("risk", table="risk_requests", runtime=runtime, features_from="finance")
    got = store.sql("SELECT id, income, debt, probability_1 FROM risk_requests_predictions ORDER BY id")
    latest = brute_latest(rows)
    assert len(got) == 3
    for customer, (_, row) in zip([3, 5, 7], got.iterrows(), strict=True):
        assert row.income == latest.loc[customer, "income"] and row.debt == latest.loc[customer, "debt"]
        x = latest.loc[[customer], ["income", "debt"]]
        assert row.probability_1 == pytest.approx(model.predict_proba(x)[0, 1], abs=1e-6)
    with pytest.raises(indb.ScoringError, match="no stored features for customer_id=99999"):
        store.sql("INSERT INTO risk_requests (customer_id) VALUES (99999)")


def test_the_runtime_does_no_text_substitution_on_sql():
    """No .replace/.format on SQL text; quote_ident (doubling '"' inside a name) and
    quote_array_element (escaping a string inside an array literal, a value) are quoting."""
    tree = ast.parse(RUNTIME_SOURCE.read_text())
    quoters = [
        f
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and f.name in ("quote_ident", "quote_array_element")
    ]
    assert len(quoters) == 2
    quoting = {node for quoter in quoters for node in ast.walk(quoter)}
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("replace", "format")
        and node not in quoting
    ]
    assert calls == [], f"udfs/plpython_runtime.py patches text at lines {calls}"


FUNCTION = "indb.score_requests()"


def _triggers(db, table: str) -> list[tuple[str, str, str]]:
    return db.backend.rows(
        "SELECT t.tgname, p.proname, pg_get_triggerdef(t.oid) FROM pg_trigger AS t "
        "JOIN pg_proc AS p ON p.oid = t.tgfoid WHERE t.tgrelid = to_regclass(%s) AND NOT t.tgisinternal "
        "ORDER BY t.tgname",
        [table],
    )


@pytest.mark.parametrize("mode", ["bulk", "row"])
def test_postgres_deployment_triggers_keep_their_names_functions_and_checks(db, logistic, loans, mode):
    if db.backend.name != "postgresql":
        pytest.skip("PostgreSQL: triggers call functions")
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.deploy("loans", table="requests", version=1, runtime="sql", mode=mode)
    if mode == "bulk":
        db.add_humility_rule("requests", "income_range", "outside_range", "income", low=0, high=1e9)
    first = _triggers(db, "requests")
    names = [name for name, _, _ in first]  # fired in name order: score, humility
    # no lock trigger: a switch takes the table's lock, which every insert waits for (test_switch_locks)
    expected = ["requests_score"] + (["requests_score_humility"] if mode == "bulk" else [])
    assert names == expected
    assert first[0][1] == "score_requests"
    assert ("FOR EACH ROW" if mode == "row" else "REFERENCING NEW TABLE AS new_rows") in first[0][2]
    ((definer, config, source),) = db.backend.rows(
        f"SELECT prosecdef, proconfig, prosrc FROM pg_proc WHERE oid = {FUNCTION!r}::regprocedure"
    )
    assert definer and "search_path=pg_catalog, pg_temp" in config
    assert "standard_conforming_strings=on" in config
    assert "TG_TABLE_NAME IS DISTINCT FROM 'requests'" in source  # trust's table check
    assert "EXCEPTION WHEN OTHERS" in source
    assert "was switched to another version" in source  # concurrency's version check
    assert f"RETURN {'NEW' if mode == 'row' else 'NULL'}" in source
    # a compiled switch replaces the function only: the table's triggers stay as they were
    oids = db.backend.rows("SELECT tgname, oid FROM pg_trigger WHERE tgrelid = 'requests'::regclass")
    db.deploy("loans", table="requests", version=2, runtime="sql", mode=mode)
    assert db.backend.rows("SELECT tgname, oid FROM pg_trigger WHERE tgrelid = 'requests'::regclass") == oids
    ((source,),) = db.backend.rows(f"SELECT prosrc FROM pg_proc WHERE oid = {FUNCTION!r}::regprocedure")
    assert "AND version = 2" in source
    _insert_and_check(db, logistic, loans, 2)
    # onnx: the shared PL/Python trigger function, given the table's name
    if db.backend.runs_onnx:
        db.deploy("loans", table="requests", version=2, runtime="onnx", mode=mode)
        score = _triggers(db, "requests")[0]
        expected = "score_inserted_row" if mode == "row" else "score_inserted_rows"
        assert score[0] == "requests_score" and score[1] == expected and "('requests')" in score[2]
        _insert_and_check(db, logistic, loans, 2)


def _insert_and_check(db, model, loans, version: int) -> None:
    """A few rows inserted are scored by ``version`` as scikit-learn scores them."""
    sample = loans[NUMERIC].head(5)
    db.write_table("requests_new", sample, replace=True)
    db.sql(f"INSERT INTO requests ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM requests_new")
    got = db.sql("SELECT model_version, probability_repaid FROM requests_scored ORDER BY id DESC LIMIT 5")
    got = got[::-1]
    assert got.model_version.tolist() == [version] * len(sample)
    assert list(model.classes_) == ["default", "repaid"]
    expected = model.predict_proba(sample)[:, 1]
    assert got.probability_repaid.tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_a_deployment_with_template_features_asks_to_be_deployed_again(store):
    """Deployments made before stored the features as a template with a {rows} slot that the
    runtime filled in: now it refuses them clearly instead of running the template."""
    if store.backend.name != "postgresql" or not store.backend.runs_onnx:
        pytest.skip("the PL/Python runtime reads the stored features")
    _risk_model(store)
    store.deploy("risk", table="risk_requests", runtime="onnx", features_from="finance")
    ((text,),) = store.backend.rows(
        "SELECT features::text FROM indb.deployments WHERE table_name = 'risk_requests'"
    )
    old = json.loads(text)
    old["source"] = old.pop("relation").replace("new_rows", "{rows}")
    store.backend.execute(
        "UPDATE indb.deployments SET features = %s::json WHERE table_name = 'risk_requests'",
        [json.dumps(old)],
    )
    with pytest.raises(indb.IndbError, match="made by an older indb.*deploy it again"):
        store.sql("INSERT INTO risk_requests (customer_id) VALUES (3)")
    assert store.sql("SELECT count(*) AS n FROM risk_requests").n[0] == 0


def test_humility_rules_on_looked_up_inputs_are_refused_clearly(store):
    """A features_from deployment's inputs come from the feature set, not the request table, so a
    rule on one of them has no column to check: refused by name, nothing stored."""
    _risk_model(store)
    store.deploy("risk", table="risk_requests", runtime="sql", features_from="finance")
    with pytest.raises(indb.DeploymentError, match=r"'income' is not a column of 'risk_requests'"):
        store.add_humility_rule("risk_requests", "rich", "outside_range", "income")
    assert store.sql("SELECT count(*) AS n FROM indb.humility_rules").n.tolist() == [0]
    store.sql("INSERT INTO risk_requests (customer_id) VALUES (3)")
    assert store.sql("SELECT count(*) AS n FROM risk_requests_predictions").n.tolist() == [1]

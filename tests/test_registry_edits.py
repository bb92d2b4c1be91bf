"""Registry fixes from real use (issue 11): re-registering indb's own exported ONNX with string
classes (11.12), editing tags and descriptions after registration and the recipe's label from
the training set (11.18)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import indb
from tests.conftest import NUMERIC

COLUMNS = NUMERIC + ["purpose"]


# -- 11.12 ----------------------------------------------------------------------------------------
def test_exported_onnx_with_string_classes_registers_again(db, mixed_pipeline, loans):
    first = db.register_model("loans", mixed_pipeline, sample=loans[COLUMNS])
    assert first.classes == ("default", "repaid")
    exported = db.get_model("loans").onnx
    again = db.register_model("loans_copy", exported, sample=loans[COLUMNS])
    assert again.classes == first.classes
    assert again.signature.prediction_type == "VARCHAR"
    row = "52000.0, 9000.0, 35, 4.5, 'car'"
    original = db.sql(f"SELECT predict_loans({row}) AS p, predict_proba_loans({row}) AS q").iloc[0]
    copied = db.sql(f"SELECT predict_loans_copy({row}) AS p, predict_proba_loans_copy({row}) AS q").iloc[0]
    assert copied.p == original.p == mixed_pipeline.predict(_one(row))[0]
    assert list(copied.q) == pytest.approx(list(original.q))


def test_exported_onnx_with_integer_classes_keeps_them(db, forest, loans):
    db.register_model("forest", forest, sample=loans[NUMERIC])
    again = db.register_model("forest_copy", db.get_model("forest").onnx, sample=loans[NUMERIC])
    assert again.classes == (0, 1)


def _one(row: str) -> pd.DataFrame:
    values = [v.strip().strip("'") for v in row.split(",")]
    frame = pd.DataFrame([values], columns=COLUMNS)
    return frame.astype({"income": float, "debt": float, "age": np.int64, "tenure": float})


# -- 11.18 ----------------------------------------------------------------------------------------
def _audit(db, action: str) -> list[dict]:
    found = db.sql("SELECT object, details FROM indb.audit_log WHERE action = $a ORDER BY id", {"a": action})
    return [
        {"object": o, "details": d if isinstance(d, dict) else json.loads(d)}
        for o, d in found.itertuples(index=False)
    ]


def test_tags_and_descriptions_are_edited_and_audited(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC], tags={"team": "risk"}, description="v1")
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    mv = db.set_tags("loans", {"owner": "ana", "team": "credit"}, version=1)
    assert mv.version == 1 and mv.tags == {"team": "credit", "owner": "ana"}
    assert db.set_tags("loans", {"team": None}, version=1).tags == {"owner": "ana"}
    assert db.set_tags("loans", {"stage": "beta"}).version == 2  # None: the default version
    assert db.get_model("loans", 2).tags == {"stage": "beta"}
    assert db.set_tags("loans", {"x": 1}, version=2, replace=True).tags == {"x": 1}
    db.set_description("loans", "credit default model")
    db.set_description("loans", "first try", version=1)
    assert db.models().description.tolist() == ["credit default model"]
    assert db.get_model("loans", 1).description == "first try"
    assert db.get_model("loans", 2).description is None
    both = db.update_model("loans", "1", tags={"reviewed": True}, description="reviewed")
    assert both.tags == {"owner": "ana", "reviewed": True} and both.description == "reviewed"
    stored = db.sql("SELECT tags FROM indb.model_versions WHERE model = 'loans' AND version = 1").tags[0]
    assert (stored if isinstance(stored, dict) else json.loads(stored)) == both.tags
    audit = _audit(db, "update_model")
    assert len(audit) == 7
    assert audit[0] == {
        "object": "loans v1",
        "details": {"tags": {"before": {"team": "risk"}, "after": {"team": "credit", "owner": "ana"}}},
    }
    assert audit[4] == {
        "object": "loans",
        "details": {"description": {"before": "v1", "after": "credit default model"}},
    }


def test_bad_edits_are_refused_and_change_nothing(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC], tags={"team": "risk"})
    with pytest.raises(indb.ModelError, match="tags must be a dict"):
        db.set_tags("loans", ["team"])
    with pytest.raises(indb.ModelError, match="cannot be stored as JSON"):
        db.set_tags("loans", {"bad": float("nan")})
    with pytest.raises(indb.ModelError, match="needs tags= and/or description="):
        db.update_model("loans")
    with pytest.raises(indb.NotFoundError):
        db.set_tags("loans", {"a": "b"}, version=7)
    with pytest.raises(indb.NotFoundError):
        db.set_description("nope", "x")
    assert db.get_model("loans").tags == {"team": "risk"}
    assert _audit(db, "update_model") == []


def test_cli_tags_and_describes(tmp_path, logistic, loans):
    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        db.register_model("loans", logistic, sample=loans[NUMERIC], tags={"team": "risk"})

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "indb.cli", *args, "--db", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    tagged = cli("models", "tag", "loans", "owner=ana", "--remove", "team")
    assert tagged.returncode == 0, tagged.stderr
    assert '{"owner": "ana"}' in tagged.stdout
    described = cli("models", "describe", "loans", "why it exists", "--version", "1")
    assert described.returncode == 0, described.stderr
    shown = cli("models", "show", "loans")
    assert '"owner": "ana"' in shown.stdout and "why it exists" in shown.stdout
    bad = cli("models", "tag", "loans", "novalue")
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_recipe_label_comes_from_the_training_set(db):
    start = datetime(2024, 1, 1)
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 30, 300).astype(np.int64),
            "ts": [start + timedelta(hours=int(h)) for h in rng.integers(0, 300, 300)],
            "income": rng.normal(50_000, 10_000, 300).round(2),
            "debt": rng.gamma(2.0, 5_000, 300).round(2),
        }
    )
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=rows, event_time="ts")
    spine = rows[["customer_id", "ts"]].rename(columns={"ts": "event_time"})
    spine["defaulted"] = np.arange(len(spine)) % 2
    ts = db.training_set(
        spine, ["finance:income", "finance:debt"], label="defaulted", materialize=True, name="loans"
    )
    frame = ts.df().dropna()
    model = LogisticRegression().fit(frame[["income", "debt"]], frame.defaulted)
    mv = db.register_model("risk", model, sample=frame[["income", "debt"]], training_set=ts)
    assert mv.recipe["label"] == "defaulted"
    assert mv.recipe["features"] == ["income", "debt"]
    by_name = db.register_model("risk", model, sample=frame[["income", "debt"]], training_set="loans")
    assert by_name.recipe["label"] == "defaulted"
    plain = db.register_model(
        "plain",
        RandomForestClassifier(n_estimators=2).fit(frame[["income"]], frame.defaulted),
        sample=frame[["income"]],
    )
    assert plain.recipe["label"] is None

"""Recipes are untrusted: rebuild() makes only allowed estimators from plain values (issue 10.3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from indb.errors import ModelError
from indb.recipe import from_json, rebuild, to_json
from tests.conftest import NUMERIC, loan_frame


def _runstring_recipe(marker) -> dict:
    code = f"open({str(marker)!r}, 'w').write('owned')"
    return {
        "estimator": {
            "estimator": "numpy.testing._private.utils.runstring",
            "params": {"astr": code, "dict": {"dict": []}},
        },
        "features": ["x"],
        "label": None,
    }


def test_rebuild_refuses_a_callable_that_is_not_an_estimator(tmp_path):
    marker = tmp_path / "owned"
    with pytest.raises(ModelError, match=r"numpy\.testing\._private\.utils\.runstring"):
        rebuild(_runstring_recipe(marker))
    assert not marker.exists()


@pytest.mark.parametrize(
    "parameter",
    [
        {"callable": "builtins.exec"},
        {"callable": "os.system"},
        {"callable": "numpy.testing._private.utils.runstring"},
        {"callable": "numpy.load"},  # in a trusted package, but not an allowed reference
        {"estimator": "subprocess.Popen", "params": {"args": ["true"]}},
        {"estimator": "numpy.lib.npyio.DataSource", "params": {}},
        {"array": [{"estimator": "x"}]},
        {"unsupported": "<object>"},
        {"float": "1e400"},
    ],
)
def test_rebuild_refuses_nested_callables_and_non_plain_values(parameter):
    recipe = {
        "estimator": {"estimator": to_json(LogisticRegression())["estimator"], "params": {"C": parameter}}
    }
    with pytest.raises(ModelError, match="recipe"):
        rebuild(recipe)


def test_rebuild_refuses_a_joblib_cache_directory(tmp_path):
    """Pipeline(memory=...) reads cached steps back with pickle: refused."""
    stored = to_json(make_pipeline(StandardScaler(), LogisticRegression()))
    stored["params"]["memory"] = str(tmp_path)
    with pytest.raises(ModelError, match="memory="):
        rebuild({"estimator": stored})


def test_rebuild_keeps_allowed_estimators_and_values():
    pipeline = make_pipeline(
        ColumnTransformer(
            [("c", OneHotEncoder(handle_unknown="ignore"), ["purpose"]), ("n", StandardScaler(), NUMERIC)]
        ),
        FunctionTransformer(np.tanh),
        SelectKBest(f_classif, k=3),
        RandomForestClassifier(n_estimators=5, class_weight={"default": 2.0, "repaid": 1.0}),
    )
    stored = json.loads(json.dumps(to_json(pipeline)))
    rebuilt = from_json(stored)
    assert to_json(rebuilt) == stored
    assert rebuilt.steps[1][1].func is np.tanh
    frame = loan_frame(200)
    rebuilt.fit(frame[NUMERIC + ["purpose"]], frame.label)


@pytest.mark.parametrize("booster", ["xgboost", "lightgbm"])
def test_rebuild_keeps_booster_models(booster):
    module = pytest.importorskip(booster)
    model = module.XGBClassifier(n_estimators=3) if booster == "xgboost" else module.LGBMRegressor()
    stored = json.loads(json.dumps(to_json(model)))
    assert to_json(from_json(stored)) == stored


def test_a_tampered_catalog_recipe_is_refused(db, tmp_path):
    frame = loan_frame(300)
    db.register_model(
        "loans", LogisticRegression(max_iter=500).fit(frame[NUMERIC], frame.label), sample=frame[NUMERIC]
    )
    assert type(rebuild(db.get_model("loans").recipe)).__name__ == "LogisticRegression"
    marker = tmp_path / "owned"
    db.sql(
        "UPDATE indb.model_versions SET recipe = $recipe WHERE model = 'loans'",
        {"recipe": json.dumps(_runstring_recipe(marker))},
    )
    with pytest.raises(ModelError, match="runstring"):
        rebuild(db.get_model("loans").recipe)
    assert not marker.exists()

"""Explanation algorithms (indb.udfs.explain): additivity, equality with closed forms and with
the shap package, one-hot columns summed back to their source column."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn import ensemble, linear_model, tree
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import indb
from indb.registry import prepare
from indb.udfs.explain import ExplainError, explainer_for
from tests.conftest import NUMERIC, loan_frame

EXACT = 1e-6
MIXED = NUMERIC + ["purpose"]


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return loan_frame(600, seed=5)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return loan_frame(40, seed=6)


def catalog_row(model, sample: pd.DataFrame) -> dict:
    """What indb.model_versions holds for ``model`` (without registering it anywhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, sig, _, _ = prepare(model, sample)
    return {
        "onnx": data,
        "inputs": sig.inputs_json(),
        "outputs": sig.outputs_json(),
        "classes": sig.classes_json(),
        "sample": sample.head(200).to_json(orient="split", index=False),
    }


def _encoded(estimator) -> Pipeline:
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), NUMERIC),
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
        ]
    )
    return Pipeline([("encode", columns), ("model", estimator)])


def linear_closed_form(pipeline: Pipeline, rows: pd.DataFrame, background: pd.DataFrame, columns, coef):
    """sum over a column's derived features of w_j (x'_j - mean x'_j), from scikit-learn."""
    transform = pipeline[:-1]
    derived = np.asarray(transform.transform(rows), dtype=float)
    mean = np.asarray(transform.transform(background), dtype=float).mean(axis=0)
    names = transform.get_feature_names_out()
    source = [
        next(c for c in columns if n.split("__")[-1] == c or n.split("__")[-1].startswith(c + "_"))
        for n in names
    ]
    per_derived = (derived - mean) * coef
    return np.column_stack([per_derived[:, [s == c for s in source]].sum(axis=1) for c in columns])


@pytest.mark.parametrize(
    "estimator, target",
    [
        (linear_model.LogisticRegression(max_iter=500), "label"),
        (linear_model.Ridge(), "loss"),
    ],
    ids=["logistic", "ridge"],
)
def test_linear_equals_the_closed_form_and_one_hot_sums_to_its_column(estimator, target, train, rows):
    pipeline = _encoded(estimator).fit(train[MIXED], train[target])
    explainer = explainer_for(catalog_row(pipeline, train[MIXED]), background=train[MIXED])
    e = explainer.explain(rows[MIXED])
    assert e.features == MIXED and e.exact and e.method == "linear"
    coef = np.asarray(pipeline[-1].coef_, dtype=float).reshape(-1)
    expected = linear_closed_form(pipeline, rows[MIXED], train[MIXED], MIXED, coef)
    np.testing.assert_allclose(e.contributions, expected, rtol=0, atol=EXACT)
    raw = pipeline.decision_function(rows[MIXED]) if target == "label" else pipeline.predict(rows[MIXED])
    np.testing.assert_allclose(e.raw, raw, rtol=0, atol=EXACT)
    assert e.output == ("log-odds of class 'repaid'" if target == "label" else "value")


def test_multiclass_linear_explains_the_predicted_class_or_any_class(train, rows):
    frame = train.assign(
        risk=pd.cut(train.debt / train.income, [-np.inf, 0.1, 0.3, np.inf], labels=list("lmh")).astype(str)
    )
    pipeline = make_pipeline(StandardScaler(), linear_model.LogisticRegression()).fit(
        frame[NUMERIC], frame.risk
    )
    explainer = explainer_for(catalog_row(pipeline, frame[NUMERIC]))  # the stored sample as background
    logits = pipeline.decision_function(rows[NUMERIC])
    e = explainer.explain(rows[NUMERIC])
    assert list(e.target) == list(pipeline.predict(rows[NUMERIC]))
    assert e.output == "softmax logit of the predicted class"
    picked = [list(pipeline.classes_).index(t) for t in e.target]
    np.testing.assert_allclose(e.raw, logits[np.arange(len(rows)), picked], atol=EXACT)
    per_class = explainer.explain_all(rows[NUMERIC])
    assert list(per_class) == list(pipeline.classes_)
    for k, label in enumerate(pipeline.classes_):
        np.testing.assert_allclose(per_class[label].raw, logits[:, k], atol=EXACT)
        assert (per_class[label].target == label).all()


def test_a_registered_versions_catalog_row_is_explained(tmp_path, train, rows):
    db = indb.connect(f"duckdb://{tmp_path}/explain.duckdb")
    try:
        pipeline = _encoded(linear_model.LogisticRegression(max_iter=500)).fit(train[MIXED], train.label)
        db.register_model("loans", pipeline, sample=train[MIXED])
        row = db.backend.query("SELECT * FROM indb.model_versions WHERE model = 'loans'").iloc[0].to_dict()
    finally:
        db.close()
    e = explainer_for(row).explain(rows[MIXED])
    np.testing.assert_allclose(e.raw, pipeline.decision_function(rows[MIXED]), atol=EXACT)
    background = train[MIXED].head(200)  # the stored sample: the first 200 registration rows
    coef = pipeline[-1].coef_.reshape(-1)
    np.testing.assert_allclose(
        e.contributions, linear_closed_form(pipeline, rows[MIXED], background, MIXED, coef), atol=EXACT
    )


def test_bad_input_is_named(train, rows):
    pipeline = make_pipeline(StandardScaler(), linear_model.Ridge()).fit(train[NUMERIC], train.loss)
    row = catalog_row(pipeline, train[NUMERIC])
    with pytest.raises(ExplainError, match="lack input column.*'tenure'"):
        explainer_for(row).explain(rows[["income", "debt", "age"]])
    with pytest.raises(ExplainError, match="background sample"):
        explainer_for({**row, "sample": None})
    with pytest.raises(ExplainError, match="target 'nope'"):
        explainer_for(row).explain(rows[NUMERIC], target="nope")


# -- trees ----------------------------------------------------------------------------------------
TREES = {
    "decision_tree": (lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=0), "label"),
    "decision_tree_multiclass": (lambda: tree.DecisionTreeClassifier(max_depth=4, random_state=0), "risk"),
    "decision_tree_regressor": (lambda: tree.DecisionTreeRegressor(max_depth=5, random_state=0), "loss"),
    "random_forest": (
        lambda: ensemble.RandomForestClassifier(5, max_depth=4, bootstrap=False, random_state=0),
        "label",
    ),
    "random_forest_regressor": (
        lambda: ensemble.RandomForestRegressor(5, max_depth=4, bootstrap=False, random_state=0),
        "loss",
    ),
    "gradient_boosting": (
        lambda: ensemble.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0),
        "label",
    ),
    "gradient_boosting_regressor": (
        lambda: ensemble.GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=0),
        "loss",
    ),
}


def with_risk(frame: pd.DataFrame) -> pd.DataFrame:
    ratio = frame.debt / frame.income
    return frame.assign(risk=pd.cut(ratio, [-np.inf, 0.1, 0.3, np.inf], labels=list("lmh")).astype(str))


def _raw(model, rows: pd.DataFrame) -> np.ndarray:
    """The raw output scikit-learn gives: probabilities (trees, forests), margins (boosting)."""
    if isinstance(model, ensemble.GradientBoostingClassifier):
        return model.decision_function(rows)
    if hasattr(model, "predict_proba"):
        return model.predict_proba(rows)
    return model.predict(rows)


@pytest.mark.parametrize("name", list(TREES))
def test_treeshap_equals_shap_tree_explainer_with_the_training_covers(name, train, rows):
    factory, target = TREES[name]
    frame = with_risk(train)
    model = factory().fit(frame[NUMERIC], frame[target])
    # Covers from the rows the model was fit on: scikit-learn's own node sample counts.
    explainer = explainer_for(catalog_row(model, frame[NUMERIC]), background=frame[NUMERIC])
    assert explainer.method == "tree_path_dependent" and explainer.exact
    reference = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    theirs = np.asarray(reference.shap_values(rows[NUMERIC]))  # (n, k) or (n, k, classes)
    expected = np.broadcast_to(reference.expected_value, theirs.shape[:1] + theirs.shape[2:])
    raw = _raw(model, rows[NUMERIC])
    per_class = explainer.explain_all(rows[NUMERIC])
    for label, e in per_class.items():
        position = 0 if label == "value" else list(model.classes_).index(label)
        mine = theirs if theirs.ndim == 2 else theirs[:, :, position]
        base = expected if expected.ndim == 1 else expected[:, position]
        np.testing.assert_allclose(e.contributions, mine, rtol=0, atol=EXACT)
        np.testing.assert_allclose(e.base, base, rtol=0, atol=EXACT)
        column = raw if raw.ndim == 1 else raw[:, position]
        np.testing.assert_allclose(e.raw, column, rtol=0, atol=EXACT)

"""Explanation algorithms (indb.udfs.explain): additivity, equality with closed forms and with
the shap package, one-hot columns summed back to their source column."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn import ensemble, linear_model, neural_network, svm, tree
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import indb
from indb.registry import PARITY_TOLERANCE, prepare
from indb.udfs.explain import ExplainError, explainer_for
from tests.conftest import NUMERIC, loan_frame
from tests.test_compiler import MODELS, _fit, training_frame

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


# -- sampling -------------------------------------------------------------------------------------
def exact_interventional(explainer, rows: pd.DataFrame) -> np.ndarray:
    """Shapley values by enumerating every coalition: v(S) = mean over the explainer's
    background rows z of f(x on S, z elsewhere); (n, k) for the first target."""
    columns, background = explainer.features, explainer.background
    k, n, b = len(columns), len(rows), len(background)
    value = {}
    for size in range(k + 1):
        for subset in itertools.combinations(range(k), size):
            mixed = background.loc[background.index.repeat(n)].reset_index(drop=True)
            for c in subset:
                mixed[columns[c]] = np.tile(rows[columns[c]].to_numpy(), b)
            value[subset] = explainer.raw(mixed)[:, 0].reshape(b, n).mean(axis=0)
    phi = np.zeros((n, k))
    for j in range(k):
        others = [c for c in range(k) if c != j]
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in itertools.combinations(others, size):
                phi[:, j] += weight * (value[tuple(sorted((*subset, j)))] - value[subset])
    return phi


def test_sampling_is_within_its_stated_error_of_the_exact_values(train, rows):
    model = make_pipeline(StandardScaler(), neural_network.MLPClassifier((8,), max_iter=400, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train[NUMERIC], train.label)
    explainer = explainer_for(catalog_row(model, train[NUMERIC]), samples=64, seed=3, background_rows=16)
    assert explainer.method == "sampling" and not explainer.exact
    e = explainer.explain(rows[NUMERIC].head(20))
    assert not e.exact and e.output == "log-odds of class 'repaid'"
    proba = model.predict_proba(rows[NUMERIC].head(20))
    np.testing.assert_allclose(e.raw, np.log(proba[:, 1]) - np.log(proba[:, 0]), atol=1e-5)
    exact = exact_interventional(explainer, rows[NUMERIC].head(20))
    assert (e.error > 0).all()
    # Every contribution within three of the row's standard errors of the exact value.
    assert (np.abs(e.contributions - exact) <= 3 * e.error[:, None]).all()
    assert np.abs(e.contributions - exact).max() > 1e-9  # a real estimate, not the enumeration


def test_sampling_is_seeded_and_does_not_depend_on_the_batch(train, rows):
    model = make_pipeline(StandardScaler(), svm.SVR()).fit(train[NUMERIC].head(200), train.loss.head(200))
    row = catalog_row(model, train[NUMERIC])
    batch = explainer_for(row, samples=16, seed=1).explain(rows[NUMERIC].head(6))
    alone = explainer_for(row, samples=16, seed=1).explain(rows[NUMERIC].iloc[[4]])
    np.testing.assert_array_equal(batch.contributions[4], alone.contributions[0])
    np.testing.assert_allclose(batch.raw, model.predict(rows[NUMERIC].head(6)), atol=1e-6)
    other = explainer_for(row, samples=16, seed=2).explain(rows[NUMERIC].head(6))
    assert not np.allclose(other.contributions, batch.contributions)


def test_a_linear_model_as_a_black_box_gives_the_closed_form(train, rows):
    pipeline = _encoded(linear_model.LogisticRegression(max_iter=500)).fit(train[MIXED], train.label)
    explainer = explainer_for(catalog_row(pipeline, train[MIXED]), method="sampling", samples=8)
    e = explainer.explain(rows[MIXED])
    coef = pipeline[-1].coef_.reshape(-1)
    # Each background row is walked from equally often: the estimate has no sampling error.
    expected = linear_closed_form(pipeline, rows[MIXED], explainer.background, MIXED, coef)
    np.testing.assert_allclose(e.contributions, expected, atol=EXACT)
    np.testing.assert_allclose(e.raw, pipeline.decision_function(rows[MIXED]), atol=EXACT)


# -- every model family of the compiler's test set -----------------------------------------------
def reference_raw(model, rows: pd.DataFrame, e) -> np.ndarray:
    """The raw output ``e.output`` names, computed by the model's own library."""
    if e.target is None:
        return np.asarray(model.predict(rows), dtype=float).ravel()
    picked = np.array([list(model.classes_).index(t) for t in e.target])
    every = np.arange(len(rows))
    kind = e.output.split(" of ")[0]
    if kind == "probability":
        return model.predict_proba(rows)[every, picked]
    if kind == "log-probability":
        return np.log(model.predict_proba(rows))[every, picked]
    if kind == "log-odds" and e.method == "sampling":
        p = model.predict_proba(rows)
        return np.log(p[:, 1]) - np.log(p[:, 0])
    library = type(model[-1] if isinstance(model, Pipeline) else model).__module__.split(".")[0]
    if library == "xgboost":
        margin = model.predict(rows, output_margin=True)
    elif library == "lightgbm":
        margin = model.predict(rows, raw_score=True)
    else:
        margin = model.decision_function(rows)
    margin = np.asarray(margin, dtype=float)
    return margin if margin.ndim == 1 else margin[every, picked]


@pytest.fixture(scope="module")
def family_frame() -> pd.DataFrame:
    return training_frame().head(500)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_compiler_model_family_is_additive(name, family_frame):
    model, columns = _fit(name, family_frame)
    train = family_frame[columns].copy()
    if name.startswith("imputer"):
        train.loc[::5, "tenure"] = np.nan
    explainer = explainer_for(catalog_row(model, train))
    rows = train.tail(20)  # NaN rows included for the imputers
    e = explainer.explain(rows)
    assert e.contributions.shape == (20, len(columns)) and e.features == columns
    reference = reference_raw(model, rows, e)
    scale = np.maximum(1.0, np.abs(reference))
    if e.exact:
        assert (np.abs(e.raw - reference) / scale).max() <= EXACT
    else:
        # Exactly additive to the ONNX model's output; that output is within the registry's
        # conversion tolerance of scikit-learn's (float32 SVMs differ by ~2e-6).
        picked = [0] * 20 if e.target is None else [explainer.targets.index(t) for t in e.target]
        raw = explainer.raw(rows)[np.arange(20), picked]
        np.testing.assert_allclose(e.raw, raw, rtol=0, atol=1e-9)
        assert (np.abs(e.raw - reference) / scale).max() <= PARITY_TOLERANCE
        assert e.error.shape == (20,) and (e.error >= 0).all()


def test_leaf_tables_equal_the_walk(train, rows, monkeypatch):
    from indb.udfs.explain import leaf_tables

    frame = with_risk(train)
    model = ensemble.RandomForestClassifier(4, max_depth=6, random_state=0).fit(frame[NUMERIC], frame.risk)
    row = catalog_row(model, frame[NUMERIC])
    tables = explainer_for(row).explain_all(rows[NUMERIC])
    monkeypatch.setattr(leaf_tables, "MAX_PATTERN_FEATURES", 0)  # every tree walked row by row
    walked = explainer_for(row)
    assert len(walked.tables.walked) == 4
    for label, e in walked.explain_all(rows[NUMERIC]).items():
        np.testing.assert_allclose(e.contributions, tables[label].contributions, rtol=0, atol=1e-12)


def test_missing_values_follow_the_trees_default_direction(train, rows):
    xgboost = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    data = train[NUMERIC].copy()
    data.loc[::4, "debt"] = np.nan
    model = xgboost.XGBRegressor(n_estimators=8, max_depth=3, random_state=0).fit(data, train.loss)
    explainer = explainer_for(catalog_row(model, data))
    some = rows[NUMERIC].copy()
    some.loc[::2, "debt"] = np.nan
    e = explainer.explain(some)
    margin = model.predict(some, output_margin=True)
    assert (np.abs(e.raw - margin) / np.maximum(1.0, np.abs(margin))).max() <= EXACT
    assert np.abs(e.contributions[::2, NUMERIC.index("debt")]).max() > 0  # NaN rows still attributed


def test_rows_are_refused_as_scoring_refuses_them(train, rows):
    pipeline = _encoded(linear_model.Ridge()).fit(train[MIXED], train.loss)
    explainer = explainer_for(catalog_row(pipeline, train[MIXED]))
    with pytest.raises(ExplainError, match="'income' holds 'lots'; it needs DOUBLE"):
        explainer.explain(rows[MIXED].assign(income="lots"))
    with pytest.raises(ExplainError, match="'purpose' holds 3; it needs VARCHAR"):
        explainer.explain(rows[MIXED].assign(purpose=3))
    with pytest.raises(ExplainError, match="'debt' is NULL or NaN in 1 row"):
        explainer.explain(rows[MIXED].assign(debt=[np.nan] + [1.0] * (len(rows) - 1)))
    with pytest.raises(ExplainError, match="'debt' is infinite"):
        explainer.explain(rows[MIXED].assign(debt=np.inf))
    empty = explainer.explain(rows[MIXED].head(0))
    assert empty.contributions.shape == (0, len(MIXED)) and empty.base.shape == (0,)


def test_a_model_version_with_its_bytes_and_an_altered_blob(tmp_path, train, rows):
    from indb.errors import IntegrityError

    db = indb.connect(f"duckdb://{tmp_path}/explain.duckdb")
    try:
        model = ensemble.GradientBoostingRegressor(n_estimators=5, max_depth=2, random_state=0)
        db.register_model("loss", model.fit(train[NUMERIC], train.loss), sample=train[NUMERIC])
        version = db.get_model("loss")
        row = db.backend.query("SELECT * FROM indb.model_versions WHERE model = 'loss'").iloc[0].to_dict()
    finally:
        db.close()
    e = explainer_for(version, background=train[NUMERIC]).explain(rows[NUMERIC])
    np.testing.assert_allclose(e.raw, model.predict(rows[NUMERIC]), atol=EXACT)
    with pytest.raises(ExplainError, match="no stored sample"):
        explainer_for(version)  # a ModelVersion carries no sample: background= is needed
    altered = bytearray(row["onnx"])
    altered[-1] ^= 1
    with pytest.raises(IntegrityError, match="sha256"):
        explainer_for({**row, "onnx": bytes(altered)})


def test_whole_tree_tables_equal_the_leaf_tables(train, rows, monkeypatch):
    from indb.udfs.explain import leaf_tables

    frame = with_risk(train)
    model = ensemble.GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0)
    row = catalog_row(model.fit(frame[NUMERIC], frame.risk), frame[NUMERIC])
    coded = explainer_for(row)
    assert len(coded.codes.trees) == 18 and not coded.tables.leaves  # 6 rounds x 3 classes
    monkeypatch.setattr(leaf_tables, "MAX_CODE_SPLITS", 0)
    by_leaf = explainer_for(row)
    assert not by_leaf.codes.trees and by_leaf.tables.leaves
    for label, e in by_leaf.explain_all(rows[NUMERIC]).items():
        np.testing.assert_allclose(
            e.contributions, coded.explain(rows[NUMERIC], target=label).contributions, atol=1e-12
        )


def test_tree_one_hot_columns_sum_to_their_source_column(train, rows):
    pipeline = _encoded(ensemble.RandomForestClassifier(4, max_depth=5, bootstrap=False, random_state=0))
    pipeline.fit(train[MIXED], train.label)
    explainer = explainer_for(catalog_row(pipeline, train[MIXED]), background=train[MIXED])
    e = explainer.explain(rows[MIXED])
    assert e.features == MIXED
    derived = pipeline[:-1].transform(rows[MIXED])
    theirs = np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(derived))[:, :, 1]  # class 'repaid'
    names = list(pipeline[:-1].get_feature_names_out())
    for position, column in enumerate(MIXED):
        mine = [i for i, n in enumerate(names) if n.split("__")[1].split("_")[0] == column]
        np.testing.assert_allclose(e.contributions[:, position], theirs[:, mine].sum(axis=1), atol=EXACT)
    assert len([n for n in names if "purpose" in n]) == 4


def test_opset_5_tree_ensembles_are_explained_like_opset_3(train, rows):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from tests.test_compiler import as_tree_ensemble_v5

    forest = ensemble.RandomForestRegressor(4, max_depth=4, bootstrap=False, random_state=0)
    forest.fit(train[NUMERIC], train.loss)
    v3 = convert_sklearn(
        forest, initial_types=[("X", FloatTensorType([None, 4]))], target_opset={"": 21, "ai.onnx.ml": 3}
    )
    v5 = as_tree_ensemble_v5(v3)
    assert [n.op_type for n in v5.graph.node] == ["TreeEnsemble"]
    e = explainer_for(catalog_row(v5.SerializeToString(), train[NUMERIC]), background=train[NUMERIC])
    assert e.method == "tree_path_dependent"
    theirs = shap.TreeExplainer(forest).shap_values(rows[NUMERIC])
    np.testing.assert_allclose(e.explain(rows[NUMERIC]).contributions, theirs, atol=EXACT)

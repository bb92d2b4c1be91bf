"""PostgreSQL text of a compiled model stays about as large as DuckDB's (issue 17): shared
sub-expressions are bound once (helper functions, or LATERAL subqueries in one expression),
never written out in place; and the SQL gives onnxruntime's answers on a real PostgreSQL."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from indb import compiled
from indb.compiled import compile_version, evaluate
from indb.errors import DeploymentError, ModelError
from indb.udfs.compiler import shared
from tests.test_compiler import assert_outputs_match_onnx, register_parity_model, training_frame


def _pca_gb():
    """PCA + gradient boosting on iris, 3 classes: every tree compares PCA components."""
    iris = load_iris(as_frame=True)
    x = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = make_pipeline(
        StandardScaler(), PCA(3), GradientBoostingClassifier(n_estimators=10, random_state=0)
    )
    return model.fit(x, iris.target), x


def _mlp():
    """An MLP with two hidden layers on breast cancer: every unit feeds the whole next layer."""
    data = load_breast_cancer(as_frame=True)
    x = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    model = make_pipeline(StandardScaler(), MLPClassifier((16, 8), max_iter=200, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(x, data.target), x


PIPELINES = {"pca_gb": _pca_gb, "mlp": _mlp}
# test_compiler's models whose PostgreSQL text without functions has levels of lets (softmax,
# tree sums, kernels, hidden units, strings, NULLs), one or two levels deep
WITH_LEVELS = [
    "logistic_multiclass",
    "gaussian_nb",
    "mlp",
    "gradient_boosting_multiclass",
    "adaboost",
    "svc_rbf_multiclass",
    "scaler_normalizer_binarizer",
    "onehot_forest",
    "imputer_tree",
]


def _text(compiled, dialect: str) -> int:
    """Bytes of the self-contained prediction and probability array (no helper functions)."""
    return len(compiled.prediction_sql(dialect)) + len(compiled.probabilities_array_sql(dialect))


@pytest.mark.parametrize("name", list(PIPELINES))
@pytest.mark.parametrize("db", ["duckdb"], indirect=True)
def test_postgres_text_is_within_twice_duckdbs(db, name):
    model, x = PIPELINES[name]()
    db.register_model(name, model, sample=x)
    compiled = compile_version(db.get_model(name))
    duckdb = _text(compiled, "duckdb")
    assert _text(compiled, "postgres") <= 2 * duckdb
    assert compiled.size("postgres") <= 2 * compiled.size("duckdb")  # with helper functions
    # what a DuckDB database shows for PostgreSQL: shared values in LATERAL subqueries
    shown = db.compile_sql(name, dialect="postgres")
    assert "CROSS JOIN LATERAL" in shown and len(shown) <= 2 * len(db.compile_sql(name))


@pytest.mark.parametrize("name", list(PIPELINES))
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_postgres_sql_matches_onnxruntime_with_and_without_functions(db, name):
    model, x = PIPELINES[name]()
    db.register_model(name, model, sample=x)
    mv = db.get_model(name)
    compiled = compile_version(mv)
    rows = pd.concat([x, x.sample(200, replace=True, random_state=1) * 1.1], ignore_index=True)
    for functions in (True, False):
        got = evaluate(db.backend, compiled, rows, functions=functions)
        assert_outputs_match_onnx(mv, compiled, got, name, rows)
    assert db.deploy(name, table="requests", runtime="sql").runtime == "sql"  # verified there too


@pytest.mark.parametrize("db", ["duckdb"], indirect=True)
def test_sql_over_the_size_limit_is_refused_naming_the_model(db, monkeypatch):
    model, x = _mlp()
    db.register_model("mlp", model, sample=x)
    monkeypatch.setattr(shared, "MAX_SQL_BYTES", 20_000)
    with pytest.raises(ModelError, match=r"model 'mlp' version 1: the compiled SQL is over 20,000 bytes"):
        db.compile_sql("mlp", dialect="postgres")
    with pytest.raises(DeploymentError, match=r"model 'mlp' version 1: the compiled SQL is over 20,000"):
        db.deploy("mlp", table="requests", runtime="sql")


@pytest.mark.parametrize("db", ["duckdb"], indirect=True)
def test_compile_sql_refuses_huge_forests_before_compiling(db, monkeypatch):
    model, x = _pca_gb()
    db.register_model("gb", model, sample=x)
    assert compiled.tree_nodes(db.get_model("gb")) > 100
    monkeypatch.setattr(compiled, "MAX_TREE_NODES", 100)
    with pytest.raises(ModelError, match=r"model 'gb' version 1 has [\d,]+ tree nodes .* the limit is 100$"):
        db.compile_sql("gb", dialect="postgres")


@pytest.mark.parametrize("name", WITH_LEVELS)
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_postgres_sql_without_functions_matches_onnxruntime_on_adversarial_rows(db, name):
    """The LATERAL form over test_compiler's random and adversarial rows (every tree threshold
    and one float32 ulp either side, large magnitudes, NULLs where the model takes them)."""
    mv, _, rows = register_parity_model(db, name, training_frame())
    if name.startswith("imputer"):
        rows.loc[::3, "tenure"] = float("nan")
    compiled = compile_version(mv)
    assert "AS indb_s1" in compiled.probabilities_array_sql("postgres")  # one level or more
    got = evaluate(db.backend, compiled, rows, functions=False)
    assert_outputs_match_onnx(mv, compiled, got, name, rows)

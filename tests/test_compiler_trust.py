"""The compiler treats models as untrusted input: a model's strings stay string literals in
every dialect, NaN/infinite inputs are refused like NULL, sizes and compile time are bounded,
and malformed models get clear errors."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pandas as pd
import pytest
import sqlglot
from onnx import TensorProto, helper
from sklearn import linear_model, tree
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import indb
from indb.compiled import compile_version, evaluate
from indb.errors import ModelError
from indb.udfs.compiler import compile_onnx, dialects

# Category strings a hostile (or unlucky) training set may hold.
PAYLOADS = [
    "plain",
    "it's",
    "C:\\",
    "\\'; DROP TABLE canary; --",
    "'); DROP TABLE canary; --",
    "$",
    "$$",
    "$indb$",
    "$indb$; DROP TABLE canary; $indb$",
    "a;b",
    "x -- y",
    "/* c */",
    "indb_let_1",
    "indb_let_2 indb_l1[1]",
    "indb_guarded",
    "INDB_FAIL(",
    "INDB_TRUNC(",
    "x 1.5 y",
    "2.5e0",
    "E'x'",
    "ünïcödé ✓ 中文 🙂",
    "line\nbreak",
]


def _category_model(kind: str = "logistic"):
    rng = np.random.default_rng(0)
    rows = 40 * len(PAYLOADS)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50_000, 10_000, rows).round(2),
            "purpose": [PAYLOADS[i % len(PAYLOADS)] for i in range(rows)],
        }
    )
    code = frame.purpose.map({p: i for i, p in enumerate(PAYLOADS)})
    frame["label"] = np.where((code % 3 == 0) ^ (frame.income > 52_000), "yes", "no")
    estimator = (
        linear_model.LogisticRegression(max_iter=500)
        if kind == "logistic"
        else tree.DecisionTreeClassifier(max_depth=8, random_state=0)
    )
    columns = ColumnTransformer(
        [("n", StandardScaler(), ["income"]), ("s", OneHotEncoder(handle_unknown="ignore"), ["purpose"])]
    )
    model = Pipeline([("encode", columns), ("model", estimator)]).fit(
        frame[["income", "purpose"]], frame.label
    )
    return model, frame[["income", "purpose"]]


def _string_literals(text: str, dialect: str) -> set[str]:
    tree = sqlglot.parse_one(text, read=dialect)
    escaped = {node.this for node in tree.find_all(sqlglot.exp.ByteString)}  # sqlglot reads E'' so
    return escaped | {node.this for node in tree.find_all(sqlglot.exp.Literal) if node.is_string}


@pytest.mark.parametrize("kind", ["logistic", "tree"])
def test_category_strings_stay_string_literals_in_every_dialect(tmp_path, kind):
    """Regression (issue 10.2): rendered SQL was patched with regexes and replace(), so a
    category "indb_let_1" or "x 1.5 y" changed (or turned into SQL)."""
    model, sample = _category_model(kind)
    with indb.connect(f"duckdb://{tmp_path}/m.duckdb") as db:
        db.register_model("m", model, sample=sample)
        compiled = compile_version(db.get_model("m"))
    for dialect in ("duckdb", "postgres", "spark"):
        helpers = ("indb", "m") if dialect == "postgres" else None
        texts = [
            compiled.prediction_sql(dialect, helpers),
            compiled.probabilities_array_sql(dialect, helpers),
        ]
        if helpers:
            texts += [h.body for h in compiled.helper_functions(helpers)]
        found = set().union(*(_string_literals(t, dialect) for t in texts if "lambda" not in t))
        if dialect == "duckdb":  # sqlglot does not parse DuckDB's lambdas: read the text instead
            found |= {p for p in PAYLOADS if any("'" + p.replace("'", "''") + "'" in t for t in texts)}
        changed = [s for s in found if s not in {*PAYLOADS, "yes", "no"} and not s.startswith("ScoringError")]
        assert not changed, f"{dialect}: string literals the model does not hold: {changed}"
        if kind == "logistic":  # every category has a coefficient
            missing = [p for p in PAYLOADS if p not in found]
            assert not missing, f"{dialect}: categories not kept as literals: {missing}"


def test_postgres_literals_do_not_depend_on_standard_conforming_strings():
    text = dialects.render(sqlglot.exp.Literal.string("C:\\ it's"), "postgres")
    assert text == "E'C:\\\\ it''s'"


@pytest.mark.parametrize("db", ["duckdb", "postgresql"], indirect=True)
def test_category_fuzz_register_compile_deploy_insert(db):
    """Hostile category strings through register -> compile -> deploy(runtime="sql") ->
    insert: predictions equal scikit-learn's, and no payload runs (the canary survives). On
    PostgreSQL the client inserts with standard_conforming_strings off."""
    model, sample = _category_model("tree")
    db.sql("CREATE TABLE canary (x INTEGER)")
    db.register_model("fuzz", model, sample=sample)
    assert db.deploy("fuzz", table="requests", runtime="sql").runtime == "sql"
    rows = pd.DataFrame(
        {
            "income": [40_000.0, 60_000.0] * len(PAYLOADS) + [55_000.0],
            "purpose": [p for p in PAYLOADS for _ in range(2)] + ["never seen"],
        }
    )
    if db.backend.dialect == "postgres":
        db.sql("SET standard_conforming_strings = off")
    for income, purpose in rows.itertuples(index=False):
        db.sql(
            "INSERT INTO requests (income, purpose) VALUES ($income, $purpose)",
            {"income": income, "purpose": purpose},
        )
    if db.backend.dialect == "postgres":
        db.sql("SET standard_conforming_strings = on")
    got = db.sql("SELECT prediction, probability_yes FROM requests_predictions ORDER BY id")
    assert list(got.prediction) == list(model.predict(rows))
    np.testing.assert_allclose(got.probability_yes, model.predict_proba(rows)[:, 1], atol=1e-6)
    assert db.sql("SELECT count(*) AS n FROM canary").n[0] == 0


def _muls(n: int) -> bytes:
    """x * x, squared again n - 1 times: 18 of them are 438 bytes of ONNX."""
    nodes, previous = [], "x"
    for i in range(n):
        out = f"m{i}" if i < n - 1 else "variable"
        nodes.append(helper.make_node("Mul", [previous, previous], [out]))
        previous = out
    graph = helper.make_graph(
        nodes,
        "muls",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor_value_info("variable", TensorProto.DOUBLE, [None, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]).SerializeToString()


@pytest.mark.parametrize("db", ["duckdb", "postgresql"], indirect=True)
def test_chained_muls_deploy_or_are_refused_quickly(db):
    """Regression (issue 10.7): the size estimate wrote every shared sub-expression out in full;
    18 chained Muls took 55 s to deploy on PostgreSQL, 21 never ended."""
    for n in (18, 21, 40):
        db.register_model(f"muls{n}", _muls(n), sample=pd.DataFrame({"x": [1.0, -1.0, 1.0]}))
        started = time.monotonic()
        try:
            db.deploy(f"muls{n}", table=f"requests{n}", runtime="sql")
        except indb.IndbError as e:
            assert "muls" in str(e) or "SQL" in str(e)
        assert time.monotonic() - started < 10, n
        compiled = compile_version(db.get_model(f"muls{n}"))
        assert compiled.size(db.backend.dialect) < 100_000


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_overflow_errors_do_not_show_the_compiled_sql(db):
    """Regression (issue 10.8): PostgreSQL quoted the trigger's whole compiled INSERT (the
    coefficients, the categories) in the context of a float overflow error."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 50)
    model = linear_model.LinearRegression().fit(pd.DataFrame({"x": x}), x * 3.25e300 + 7.5)
    db.register_model("huge", model, sample=pd.DataFrame({"x": x}))
    assert db.deploy("huge", table="requests", runtime="sql").runtime == "sql"
    with pytest.raises(indb.IndbError) as caught:
        db.sql("INSERT INTO requests (x) VALUES (1e300)")
    assert "out of range" in str(caught.value)
    assert "3.25e+300" not in str(caught.value) and "e+300" not in str(caught.value)


def _chain_tree(depth: int, nan_at: int | None = None) -> bytes:
    """A TreeEnsembleRegressor whose one tree is a chain ``depth`` branches deep."""
    leaves = list(range(depth, 2 * depth + 1))
    ids = list(range(2 * depth + 1))
    modes = ["BRANCH_LEQ"] * depth + ["LEAF"] * (depth + 1)
    values = [float(i) for i in range(depth)] + [0.0] * (depth + 1)
    if nan_at is not None:
        values[nan_at] = float("nan")
    true_ids = [depth + i for i in range(depth)] + [0] * (depth + 1)
    false_ids = [i + 1 for i in range(depth - 1)] + [2 * depth] + [0] * (depth + 1)
    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["x"],
        ["variable"],
        domain="ai.onnx.ml",
        n_targets=1,
        nodes_treeids=[0] * len(ids),
        nodes_nodeids=ids,
        nodes_featureids=[0] * len(ids),
        nodes_modes=modes,
        nodes_values=values,
        nodes_truenodeids=true_ids,
        nodes_falsenodeids=false_ids,
        target_treeids=[0] * len(leaves),
        target_nodeids=leaves,
        target_ids=[0] * len(leaves),
        target_weights=[float(i) for i in range(len(leaves))],
    )
    graph = helper.make_graph(
        [node],
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
    )
    opsets = [helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def test_deep_trees_and_nan_thresholds_are_refused_clearly(tmp_path):
    """Regression (issue 10.8): a tree 500 deep raised a raw RecursionError; NaN thresholds
    compiled to comparisons that never hold."""
    sample = pd.DataFrame({"x": [0.5, 3.0, 7.0]})
    with indb.connect(f"duckdb://{tmp_path}/m.duckdb") as db:
        db.register_model("shallow", _chain_tree(8), sample=sample)
        assert db.deploy("shallow", table="shallow_requests", runtime="sql").runtime == "sql"
        db.register_model("deep", _chain_tree(500), sample=sample)
        with pytest.raises(ModelError, match="deeper than"):
            compile_version(db.get_model("deep"))
        with pytest.raises(indb.DeploymentError, match="runtime='sql' is not possible: tree 0 is deeper"):
            db.deploy("deep", table="deep_requests", runtime="sql")
        db.register_model("nan", _chain_tree(4, nan_at=2), sample=sample)
        with pytest.raises(ModelError, match="tree 0 node 2 has a NaN threshold"):
            compile_version(db.get_model("nan"))
        assert db.deploy("nan", table="nan_requests").runtime == "onnx"  # auto: onnxruntime's semantics


def test_input_names_starting_indb_are_refused(tmp_path):
    """Regression (issue 10.8): inputs named indb_guarded / indb_let_1 / indb_row crashed deploy
    or corrupted verification (they are the compiler's own names)."""
    rng = np.random.default_rng(2)
    for name in ("indb_guarded", "indb_let_1", "indb_row", "INDB_x"):
        frame = pd.DataFrame({name: rng.normal(size=60), "other": rng.normal(size=60)})
        model = linear_model.LinearRegression().fit(frame, frame.other * 2 + frame[name])
        with indb.connect(f"duckdb://{tmp_path}/{name}.duckdb") as db:
            db.register_model("m", model, sample=frame)
            with pytest.raises(ModelError, match=f"input column '{name}': names starting with 'indb_'"):
                compile_version(db.get_model("m"))
            with pytest.raises(ModelError, match="names starting with 'indb_'"):
                db.deploy("m", table="requests", runtime="sql")


@pytest.mark.parametrize("db", ["duckdb", "postgresql"], indirect=True)
def test_nan_and_infinite_inputs_are_rejected_like_null(db):
    """Issue 10.8: NaN and +-inf passed the NULL checks and scored as confident labels."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = linear_model.LogisticRegression().fit(frame, np.where(frame.a + frame.b > 0, "yes", "no"))
    db.register_model("m", model, sample=frame)
    assert db.deploy("m", table="requests", runtime="sql").runtime == "sql"
    insert = "INSERT INTO requests (a, b) VALUES ($a, $b)"
    db.sql(insert, {"a": 0.5, "b": 1e300})
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(indb.ScoringError, match="NULL, NaN or infinite; it needs values in a, b"):
            db.sql(insert, {"a": 0.5, "b": bad})
    assert list(db.sql("SELECT prediction FROM requests_predictions").prediction) == ["yes"]


def test_allow_nan_models_take_nan_inputs(tmp_path):
    """A model registered with allow_nan=True (its imputer expects NaN) gets no NaN check,
    in the compiled SQL and through a compiled deployment."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    model = linear_model.LinearRegression().fit(frame, frame.a - frame.b)
    with indb.connect(f"duckdb://{tmp_path}/m.duckdb") as db:
        db.register_model("strict", model, sample=frame)
        db.register_model("loose", model, sample=frame, allow_nan=True)
        strict, loose = db.get_model("strict"), db.get_model("loose")
        assert loose.signature.allow_nan and not strict.signature.allow_nan
        rows = pd.DataFrame({"a": [1.0], "b": [float("inf")]})
        with pytest.raises(Exception, match="NaN or infinite"):
            evaluate(db.backend, compile_onnx(onnx.load_from_string(strict.onnx), strict.signature), rows)
        compiled = compile_onnx(onnx.load_from_string(loose.onnx), loose.signature)
        assert evaluate(db.backend, compiled, rows).o0[0] == float("-inf")
        assert db.deploy("loose", table="requests", runtime="sql").runtime == "sql"
        db.sql("INSERT INTO requests (a, b) VALUES (1.0, 'inf'::DOUBLE)")
        assert db.sql("SELECT prediction FROM requests_predictions").prediction[0] == float("-inf")


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_evaluate_shows_the_real_error_and_leaves_nothing_behind(db):
    """Regression (issue 10.8): evaluate's `finally: DROP` ran in the aborted transaction and
    replaced the real error with "current transaction is aborted"."""
    x = np.linspace(0, 1, 20)
    model = linear_model.LinearRegression().fit(pd.DataFrame({"x": x}), x * 3.25e300)
    db.register_model("huge", model, sample=pd.DataFrame({"x": x}))
    compiled = compile_version(db.get_model("huge"))
    with pytest.raises(Exception, match="out of range") as caught:
        evaluate(db.backend, compiled, pd.DataFrame({"x": [1e300]}))
    assert "transaction is aborted" not in str(caught.value)
    left = db.sql("SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'indb_verify_%'")
    assert left.n[0] == 0


def test_verification_accepts_sql_that_matches_the_estimator_on_ties(tmp_path):
    """Issue 11.14: a 10-tree forest gives exact 0.5/0.5 votes; onnxruntime picks the second
    class there, the SQL picks scikit-learn's (the first). Verification counted those as label
    mismatches and refused SQL that is right; ties now pass as they do at registration."""
    from sklearn import ensemble

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=400).round(1), "b": rng.normal(size=400).round(1)})
    label = np.where(rng.uniform(size=400) < 0.5, "x", "y")  # noise: many 5-5 votes
    model = ensemble.RandomForestClassifier(10, random_state=0).fit(frame, label)
    ties = np.isclose(model.predict_proba(frame)[:, 0], 0.5).sum()
    assert ties > 0
    with indb.connect(f"duckdb://{tmp_path}/m.duckdb") as db:
        db.register_model("rf", model, sample=frame)
        deployment = db.deploy("rf", table="requests", runtime="sql")
        assert deployment.runtime == "sql"
        db.sql("INSERT INTO requests (a, b) VALUES (0.1, 0.2), (1.5, -0.3)")
        got = db.sql("SELECT prediction FROM requests_predictions ORDER BY id").prediction
        assert list(got) == list(model.predict(pd.DataFrame({"a": [0.1, 1.5], "b": [0.2, -0.3]})))


def test_verification_takes_sql_closer_to_the_estimator_and_names_the_failing_figure():
    """Issue 11.14: SQL 0.0025 from scikit-learn where onnxruntime is 0.085 off was refused at
    1.45e-6 relative to onnxruntime, and the message showed a passing figure."""
    from types import SimpleNamespace

    from indb.compiled import _compare
    from indb.registry import EXPECTED

    sig = SimpleNamespace(task="regression")
    onnxruntime = [np.array([100_000.15, 100_000.0, 5.0])]
    estimator = pd.DataFrame({EXPECTED: [100_000.0025, 100_000.0]})  # the sample rows only

    def compare(sql):
        return _compare(sig, None, pd.DataFrame({"o0": sql}), onnxruntime, estimator)

    good = compare([100_000.0, 100_000.0, 5.0])  # 1.5e-6 from onnxruntime, nearer the estimator
    assert good.max_difference == pytest.approx(1.5e-6, rel=1e-3) and good.failed == []
    assert good.tolerance == pytest.approx(1.475e-6, rel=1e-3)  # onnxruntime's own distance
    bad = compare([100_000.4, 100_000.0, 5.1])
    assert bad.failed == [0, 2] and bad.worst == 2 and bad.difference[2] == pytest.approx(0.02)
    assert "SQL 3.97e-06, onnxruntime 1.47e-06" in bad.estimator_value(0)

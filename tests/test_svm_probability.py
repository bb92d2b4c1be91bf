"""Two-class SVMClassifier with probabilities (SVC(probability=True)) compiled to SQL: Platt's
sigmoid of the decision value, then onnxruntime's pairwise coupling unrolled (svm_coupling)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper
from sklearn import svm
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from indb.udfs import convert, sessions
from indb.udfs.compiler import svm_coupling
from tests.conftest import NUMERIC, loan_frame
from tests.test_compiler import assert_sql_matches_onnx, training_frame

F = np.float32
# First-class probabilities (float32) either side of which the coupling takes a different number of
# rounds: 0 rounds within 0.005 of 0.5 (answer 0.5 / 0.5), else 1 or 2. Found by the exhaustive run
# of benchmarks/svc_probability.py; each is a jump of up to 0.005 in onnxruntime's answer.
BOUNDARIES = (0.0025192308, 0.35548780, 0.35548803, 0.4950000, 0.5050000, 0.67636549, 0.67636567, 0.94063026)


def _decision_value_model(prob_a: float, prob_b: float) -> onnx.ModelProto:
    """An SVMClassifier whose decision value is its one input, exactly (a linear kernel over
    the support vectors 1 and 0): every float32 decision value can be tried."""
    node = helper.make_node(
        "SVMClassifier",
        ["x"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        classlabels_strings=["no", "yes"],
        coefficients=[1.0, 0.0],
        kernel_type="LINEAR",
        kernel_params=[0.0, 0.0, 1.0],
        prob_a=[prob_a],
        prob_b=[prob_b],
        rho=[0.0],
        support_vectors=[1.0, 0.0],
        vectors_per_class=[1, 1],
        post_transform="NONE",
    )
    graph = helper.make_graph(
        [node],
        "decision_value",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    )
    model.ir_version = 8
    return model


def _ulps_around(value: float, count: int) -> np.ndarray:
    bits = np.asarray(F(value)).view(np.int32)
    return np.arange(bits - count, bits + count + 1, dtype=np.int32).view(F)


def decision_values() -> np.ndarray:
    """Random decision values, extremes, and 300 float32 values either side of every value
    whose probability lands on a boundary of the coupling's rounds."""
    rng = np.random.default_rng(17)
    at_boundaries = [_ulps_around(np.log((1 - b) / b), 300) for b in BOUNDARIES]
    extremes = [0.0, 1e-30, 1e-8, 16.0, 16.6, 17.0, 17.5, 30.0, 69.0, 88.0, 104.0, 1e4, 1e30, 3e38]
    values = np.concatenate([rng.normal(0, 4, 4_000), *at_boundaries, extremes, [-e for e in extremes]])
    return values.astype(F).astype(np.float64)


@pytest.mark.parametrize(("prob_a", "prob_b"), [(1.0, 0.0), (-2.2903042, -0.085154)])
def test_probabilities_match_onnxruntime_at_every_decision_value(db, prob_a, prob_b):
    model = _decision_value_model(prob_a, prob_b)
    rows = pd.DataFrame({"x": decision_values()})
    db.register_model("decision", model.SerializeToString(), sample=rows.head(50))
    report = assert_sql_matches_onnx(db, "decision", rows)
    assert report["rows"] == len(rows)


def test_the_coupling_settles_within_the_unrolled_rounds():
    """A sample of the exhaustive check (every float32 in [1e-7, 1 - 1e-7] is in the benchmark):
    after ROUNDS rounds a further round stops at once; one round fewer does not suffice."""
    low, high = np.asarray([F(svm_coupling.LOW), F(svm_coupling.HIGH)]).view(np.int32)
    sample = np.arange(low, high + 1, 4_099, dtype=np.int32).view(F)
    r = np.concatenate([sample, *[_ulps_around(b, 2_000) for b in BOUNDARIES]])
    *_, settled = svm_coupling.couple(r, svm_coupling.NumpyOps)
    assert settled.all()
    *_, settled = svm_coupling.couple(r, svm_coupling.NumpyOps, rounds=svm_coupling.ROUNDS - 1)
    assert not settled.all()


def test_the_numpy_coupling_is_onnxruntimes():
    """The arithmetic the SQL is built from, run in numpy, gives onnxruntime's probabilities
    bit for bit wherever the C library's expf is correctly rounded."""
    model = _decision_value_model(1.0, 0.0)
    x = decision_values().astype(F)
    theirs = sessions.build(model.SerializeToString()).run(None, {"x": x.reshape(-1, 1)})[1]
    ops = svm_coupling.NumpyOps
    p0, p1, _ = svm_coupling.couple(svm_coupling.platt(x, 1.0, 0.0, ops), ops)
    same = (theirs[:, 0] == p0) & (theirs[:, 1] == p1)
    assert same.mean() > 0.999, f"{(~same).sum()} of {len(x)} differ"
    assert np.abs(theirs - np.stack([p0, p1], axis=1)).max() <= 4.2e-7


def test_binary_svc_with_probabilities_deploys_as_sql(db):
    """deploy(runtime="sql") verifies the compiled SQL against onnxruntime; inserted rows are then
    scored by it as onnxruntime scores them."""
    frame = training_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.9 deprecates probability=True
        model = make_pipeline(StandardScaler(), svm.SVC(probability=True, random_state=0))
        model.fit(frame[NUMERIC].head(300), frame.label.head(300))
        db.register_model("svcp", model, sample=frame[NUMERIC].head(300))
    assert db.deploy("svcp", table="requests", runtime="sql").runtime == "sql"
    rows = loan_frame(50, seed=4)[NUMERIC]
    db.write_table("requests_new", rows, replace=True)
    db.sql(f"INSERT INTO requests ({', '.join(NUMERIC)}) SELECT {', '.join(NUMERIC)} FROM requests_new")
    got = db.sql(
        "SELECT prediction, probability_default, probability_repaid FROM requests_scored ORDER BY id"
    )
    mv = db.get_model("svcp")
    labels, probabilities = sessions.build(mv.onnx).run(None, convert.feeds(mv.signature, rows))
    assert got.prediction.tolist() == list(labels)
    ours = got[["probability_default", "probability_repaid"]].to_numpy(dtype=float)
    assert np.abs(ours - probabilities).max() <= 1e-6

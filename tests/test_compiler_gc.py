"""The compiler holds Python's garbage collector off while it builds and renders a model, and
gives it back as it found it (shared.paused_gc), also when compiling fails."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

import indb
from indb import registry
from indb.udfs.compiler import ModelRefused, compile_onnx
from indb.udfs.compiler.shared import paused_gc

FEATURES = ["a", "b", "c"]


@pytest.fixture
def version():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((400, 3)), columns=FEATURES)
    model = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)
    model.fit(x, (x.a + x.b > 0).astype(int))
    db = indb.connect("duckdb:///:memory:")
    db.register_model("rf", model, sample=x)
    yield registry.get(db.backend, "rf", 1)
    db.close()


def test_paused_gc_restores_what_it_found():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not resume what the outer one paused
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_compiling_and_rendering_leave_the_collector_running(version):
    compiled = compile_onnx(onnx.load_from_string(version.onnx), version.signature)
    assert gc.isenabled()
    assert "CASE WHEN" in compiled.prediction_sql("duckdb")
    assert gc.isenabled()


def test_a_refused_model_leaves_the_collector_running(version, monkeypatch):
    from indb.udfs.compiler import trees

    monkeypatch.setattr(trees, "MAX_TREE_DEPTH", 1)
    with pytest.raises(ModelRefused):
        compile_onnx(onnx.load_from_string(version.onnx), version.signature)
    assert gc.isenabled()

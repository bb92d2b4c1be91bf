"""Verification computes a model's prediction and probabilities as one struct on DuckDB
(``CompiledModel.outputs_tree``: a tree sum bound once for both); its answers must be the
very answers of the separate expressions the deployment installs, on every kind of model
and on the rows that catch tree errors (every threshold and one float32 ulp either side)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indb.compiled import compile_version, evaluate, verify
from tests.test_compiler import assert_outputs_match_onnx, register_parity_model, training_frame

MODELS = [
    "gradient_boosting",  # one boosted margin: label and probabilities share it
    "random_forest_multiclass",
    "gradient_boosting_regressor",  # no probabilities
    "onehot_forest",  # string categories
    "imputer_tree",  # NaN routing in trees
    "logistic",
]


@pytest.fixture(scope="module")
def frame():
    return training_frame()


@pytest.mark.parametrize("name", MODELS)
def test_outputs_together_are_the_separate_outputs(db, name, frame):
    mv, columns, rows = register_parity_model(db, name, frame)
    if name.startswith("imputer"):
        rows.loc[::3, "tenure"] = np.nan
    compiled = compile_version(mv)
    apart = evaluate(db.backend, compiled, rows)
    together = evaluate(db.backend, compiled, rows, together=True)
    assert list(together.columns) == list(apart.columns)
    assert [str(v) for v in together.o0] == [str(v) for v in apart.o0]
    for column in apart.columns[1:]:
        np.testing.assert_array_equal(together[column].to_numpy(float), apart[column].to_numpy(float))
    assert_outputs_match_onnx(mv, compiled, together, name, rows)
    assert verify(db.backend, mv, compiled)["label_mismatches"] == 0


def test_postgresql_has_no_struct_form(db, frame):
    mv, _, _ = register_parity_model(db, "gradient_boosting", frame)
    compiled = compile_version(mv)
    assert compiled.outputs_tree("postgres") is None
    assert compiled.outputs_tree("duckdb") is not None


def test_a_struct_row_with_a_null_input_raises_the_guard(db, frame):
    mv, columns, rows = register_parity_model(db, "gradient_boosting", frame)
    compiled = compile_version(mv)
    if compiled.outputs_tree(db.backend.dialect) is None:
        pytest.skip("PostgreSQL verifies through the helper functions: there is no struct form")
    bad = pd.DataFrame([{**rows.iloc[0].to_dict(), columns[0]: None}], columns=columns)
    with pytest.raises(Exception, match="ScoringError"):
        evaluate(db.backend, compiled, bad, together=True)

"""Comparing database predictions with scikit-learn's own."""

from __future__ import annotations

import numpy as np

from indb.registry import decisive_mismatches
from indb.udfs.convert import python_classes

TOLERANCE = 1e-5


def assert_matches_sklearn(model, frame, predictions, probabilities=None) -> None:
    """Values within TOLERANCE; labels equal except on exact ties between classes
    (where scikit-learn and onnxruntime may pick either)."""
    expected = np.asarray(model.predict(frame))
    if not hasattr(model, "predict_proba"):
        np.testing.assert_allclose(np.asarray(predictions, dtype=float), expected, atol=TOLERANCE)
        return
    proba = model.predict_proba(frame)
    classes = python_classes(model.classes_)
    got = np.array(list(predictions), dtype=object)
    assert decisive_mismatches(got, python_classes(expected), proba, classes) == 0
    if probabilities is not None:
        np.testing.assert_allclose(np.vstack(list(probabilities)), proba, rtol=0, atol=TOLERANCE)

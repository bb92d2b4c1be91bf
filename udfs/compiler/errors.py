"""Why a model does not compile: an operator the compiler lacks, or a model it refuses."""

from __future__ import annotations

from indb.errors import ModelError


class UnsupportedOperator(ValueError):
    """The graph holds an operator (or an attribute value) the compiler cannot translate."""


class ModelRefused(UnsupportedOperator, ModelError):
    """The model is too large, too deep or too slow to compile, or holds values the SQL could
    not mean the same way (NaN thresholds). Under ``runtime="auto"`` onnxruntime scores it."""

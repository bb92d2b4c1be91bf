"""Training recipes as JSON: enough to rebuild an unfitted estimator and train it again.

A recipe holds the estimator's class path and parameters (nested estimators
included), the feature columns and, when known, the label. No pickle: rebuilding
imports classes only from the packages listed in ``TRUSTED_PACKAGES``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from indb.errors import ModelError

TRUSTED_PACKAGES = ("sklearn", "xgboost", "lightgbm", "numpy")


def class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and not isinstance(value, type)


def to_json(value: Any) -> Any:
    """A JSON-safe description of an estimator parameter."""
    if _is_estimator(value):
        params = {k: to_json(v) for k, v in value.get_params(deep=False).items()}
        return {"estimator": class_path(value), "params": params}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": str(value)}  # strict JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        return {"array": value.tolist()}
    if isinstance(value, tuple):
        return {"tuple": [to_json(v) for v in value]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, type) or callable(value):
        return {
            "callable": class_path(value)
            if isinstance(value, type)
            else f"{value.__module__}.{value.__qualname__}"
        }
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    return {"unsupported": repr(value)}


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    if module.split(".")[0] not in TRUSTED_PACKAGES:
        raise ModelError(f"recipe names {path!r}, outside the trusted packages {TRUSTED_PACKAGES}")
    return getattr(importlib.import_module(module), name)


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`: rebuild parameters and unfitted estimators."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "estimator" in value:
        params = {k: from_json(v) for k, v in value["params"].items()}
        return _import(value["estimator"])(**params)
    if "tuple" in value:
        return tuple(from_json(v) for v in value["tuple"])
    if "array" in value:
        return np.array(value["array"])
    if "dict" in value:
        return {from_json(k): from_json(v) for k, v in value["dict"]}
    if "callable" in value:
        return _import(value["callable"])
    if "slice" in value:
        return slice(*value["slice"])
    if "float" in value:
        return float(value["float"])
    raise ModelError(f"recipe parameter {value!r} cannot be rebuilt")


def recipe(estimator: Any, features: list[str], label: str | None = None) -> dict:
    import sklearn

    return {
        "estimator": to_json(estimator),
        "features": features,
        "label": label,
        "versions": {"sklearn": sklearn.__version__},
    }


def rebuild(recipe_json: dict) -> Any:
    """An unfitted estimator with the recipe's class and parameters."""
    if not recipe_json.get("estimator"):
        raise ModelError("this model was registered from ONNX bytes and has no estimator recipe")
    return from_json(recipe_json["estimator"])

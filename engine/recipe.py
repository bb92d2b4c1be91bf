"""Training recipes as JSON: enough to rebuild an unfitted estimator and train it again.

A recipe holds the estimator's class path and parameters (nested estimators
included), the feature columns and, when known, the label. No pickle. A recipe is
untrusted input (anyone who can write the catalog can edit it), so rebuilding
instantiates only the estimator and transformer classes of an explicit allow-list
(scikit-learn's own, found by ``sklearn.utils.all_estimators``, and the scikit-learn
API classes of XGBoost and LightGBM) with parameters that are plain JSON values,
arrays of numbers or strings, and nested allowed estimators. The only other
references it resolves are a few harmless values estimators take as parameters:
dtypes, numpy ufuncs and scikit-learn's feature-selection score functions. Any other
callable is refused with a ModelError naming it.
"""

from __future__ import annotations

import importlib
import math
from functools import cache
from typing import Any

import numpy as np

from indb.errors import ModelError

# Classes besides scikit-learn's (module, names): their scikit-learn API estimators.
BOOSTER_CLASSES = {
    "xgboost": ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"),
    "lightgbm": ("LGBMClassifier", "LGBMRegressor", "LGBMRanker"),
}
# Types estimators take as a ``dtype`` parameter (e.g. OneHotEncoder(dtype=np.float64)).
DTYPES = (
    "float",
    "int",
    "bool",
    "str",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool_",
)
# Score functions of SelectKBest/SelectPercentile/GenericUnivariateSelect.
SCORE_FUNCTIONS = (
    "chi2",
    "f_classif",
    "f_oneway",
    "f_regression",
    "r_regression",
    "mutual_info_classif",
    "mutual_info_regression",
)


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


@cache
def allowed_estimators() -> dict[str, type]:
    """Class path -> class of every estimator a recipe may name."""
    from sklearn.utils import all_estimators

    found = {class_path(cls): cls for _, cls in all_estimators()}
    for module_name, names in BOOSTER_CLASSES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type):
                found[class_path(cls)] = cls
    return found


@cache
def allowed_references() -> dict[str, Any]:
    """Path -> object of the non-estimator values a parameter may name (dtypes, ufuncs,
    score functions). None of them runs anything when the estimator is rebuilt."""
    import builtins

    import sklearn.feature_selection as selection

    found: dict[str, Any] = {}
    for name in DTYPES:
        value = getattr(builtins, name, None) or getattr(np, name)
        found[class_path(value)] = value
    for name in dir(np):
        value = getattr(np, name)
        if isinstance(value, np.ufunc):
            found[f"numpy.{name}"] = value
    for name in SCORE_FUNCTIONS:
        value = getattr(selection, name)
        found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _estimator_class(path: Any) -> type:
    found = allowed_estimators().get(path) if isinstance(path, str) else None
    if found is None:
        raise ModelError(
            f"recipe names {path!r}, which is not an allowed estimator: a recipe may only rebuild "
            "scikit-learn estimators and transformers and XGBoost/LightGBM scikit-learn models"
        )
    return found


def _reference(path: Any) -> Any:
    found = allowed_references().get(path) if isinstance(path, str) else None
    if found is None:
        raise ModelError(
            f"recipe names the callable {path!r}, which is not allowed: a parameter may name only a "
            "dtype, a numpy ufunc or a scikit-learn score function"
        )
    return found


def _plain_array(values: Any) -> np.ndarray:
    array = np.array(values)
    if array.dtype.kind in "biufU":
        return array
    if array.dtype.kind == "O" and all(
        v is None or isinstance(v, bool | int | float | str) for v in array.ravel().tolist()
    ):
        return array
    raise ModelError(f"recipe array {values!r:.80} holds values other than numbers and strings")


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`: rebuild parameters and unfitted estimators, refusing
    anything but allowed classes and plain values (the recipe is untrusted)."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise ModelError(f"recipe parameter {value!r:.80} cannot be rebuilt")
    if "estimator" in value:
        cls = _estimator_class(value["estimator"])
        params = value.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise ModelError(f"recipe parameters of {value['estimator']} must be a JSON object")
        if params.get("memory") is not None:  # Pipeline/FeatureUnion: joblib unpickles its cache
            raise ModelError(
                f"recipe gives {value['estimator']} memory={params['memory']!r}: a joblib cache "
                "directory is read back with pickle, so a rebuilt estimator takes memory=None only"
            )
        try:
            return cls(**{k: from_json(v) for k, v in params.items()})
        except TypeError as e:
            raise ModelError(f"recipe parameters of {value['estimator']} are wrong: {e}") from None
    (key,) = value
    body = value[key]
    if key == "tuple" and isinstance(body, list):
        return tuple(from_json(v) for v in body)
    if key == "array" and isinstance(body, list):
        return _plain_array(body)
    if key == "dict" and isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 for p in body):
        return {from_json(k): from_json(v) for k, v in body}
    if key == "callable":
        return _reference(body)
    if key == "slice" and isinstance(body, list) and len(body) == 3:
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in body):
            raise ModelError(f"recipe slice {body!r} holds values other than integers")
        return slice(*body)
    if key == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    raise ModelError(f"recipe parameter {value!r:.80} cannot be rebuilt")


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

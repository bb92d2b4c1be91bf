"""Turn a fitted scikit-learn model, or ready ONNX bytes, into ONNX with one input per SQL column.

One input per column lets SQL pass columns by name and type, strings included.
skl2onnx takes per-column inputs only for pipelines that start with a
ColumnTransformer; any other estimator is converted with one ``[None, n]``
input and a Concat over the per-column inputs is put in front of its graph.
"""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper

from indb.udfs.signature import ONNX_NUMPY, Input, Signature, sql_type_of

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
_ELEM_TYPES = {
    TensorProto.FLOAT: "float",
    TensorProto.DOUBLE: "double",
    TensorProto.INT64: "int64",
    TensorProto.STRING: "string",
}
_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class ConversionError(ValueError):
    """The model cannot be turned into per-column ONNX; the message says why."""


def sample_types(sample: pd.DataFrame) -> dict[str, str]:
    """SQL type per sample column; raises ConversionError naming a column that has none."""
    if not isinstance(sample, pd.DataFrame):
        raise ConversionError(
            f"sample must be a pandas DataFrame with one column per model input, got {type(sample).__name__}"
        )
    if sample.empty:
        raise ConversionError("sample is empty: give at least one row of model input")
    try:
        return {str(c): sql_type_of(sample[c]) for c in sample.columns}
    except ValueError as e:
        raise ConversionError(str(e)) from None


def _starts_with_column_transformer(estimator) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, ColumnTransformer):
        return True
    return isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], ColumnTransformer)


_BOOSTERS_REGISTERED = False


def register_boosters() -> None:
    """Teach skl2onnx XGBoost's and LightGBM's scikit-learn models through onnxmltools'
    converters (once per process; skipped for a library that is not installed)."""
    global _BOOSTERS_REGISTERED
    if _BOOSTERS_REGISTERED:
        return
    _BOOSTERS_REGISTERED = True
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        pass
    else:
        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(
            LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm
        )


@contextlib.contextmanager
def _unnamed_boosters(estimator):
    """onnxmltools reads XGBoost features only as f0, f1, ...; a booster fitted on a
    DataFrame carries column names, so they are taken off while converting and put back."""
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    named = []
    for step in steps:
        get_booster = getattr(step, "get_booster", None)
        if get_booster is not None and getattr(get_booster(), "feature_names", None) is not None:
            named.append((get_booster(), get_booster().feature_names))
    try:
        for booster, _ in named:
            booster.feature_names = None
        yield
    finally:
        for booster, names in named:
            booster.feature_names = names


def _own_options(estimator) -> dict | None:
    """Options addressed to a pipeline's final classifier: otherwise skl2onnx hands it the
    pipeline's zipmap option, which LinearSVC and other classifiers without
    predict_proba refuse."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return None
    return {id(estimator.steps[-1][1]): {"nocl": False}}


def from_sklearn(estimator, sample: pd.DataFrame) -> onnx.ModelProto:
    """Convert with double precision where the converters allow it, else float."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    from indb.udfs.converters import DOUBLE_CONVERTERS

    register_boosters()
    types = sample_types(sample)
    options = {"zipmap": False} if is_classifier(estimator) else None
    per_column = _starts_with_column_transformer(estimator)
    if not per_column:
        text = [c for c, t in types.items() if t == "VARCHAR"]
        if text:
            raise ConversionError(
                f"{type(estimator).__name__} takes numbers only but sample column(s) {text} "
                "hold strings; encode them in a Pipeline that starts with a ColumnTransformer "
                "(e.g. OneHotEncoder)"
            )
    errors = []
    # Classifiers without predict_proba (LinearSVC, ...) may refuse the zipmap option.
    choices = [options, None, _own_options(estimator)] if options else [None]
    for tensor, option in ((t, o) for t in (DoubleTensorType, FloatTensorType) for o in choices):
        if per_column:
            initial = [
                (c, StringTensorType([None, 1]) if t == "VARCHAR" else tensor([None, 1]))
                for c, t in types.items()
            ]
        else:
            initial = [("X", tensor([None, len(types)]))]
        try:
            with _unnamed_boosters(estimator):
                model = convert_sklearn(
                    estimator,
                    initial_types=initial,
                    options=option,
                    target_opset=TARGET_OPSET,
                    name=type(estimator).__name__,  # not a random uuid: the same fit, the same bytes
                    custom_conversion_functions=DOUBLE_CONVERTERS if tensor is DoubleTensorType else None,
                )
            model = model if per_column else concat_columns(model, list(types))
            if tensor is DoubleTensorType:
                round_tree_inputs(model)
            _check_runs(model, sample.head(5), getattr(estimator, "classes_", None))
        except Exception as e:  # skl2onnx and onnxruntime raise many types; keep the reason
            errors.append(f"{tensor.__name__}: {e}")
            continue
        return model
    raise ConversionError(f"skl2onnx could not convert {type(estimator).__name__}: " + " | ".join(errors))


def round_tree_inputs(model: onnx.ModelProto) -> None:
    """Round double inputs of tree ensembles to float32 first, as scikit-learn's trees do.

    Thresholds sit halfway between float32 values; comparing the unrounded double lets a
    value that scikit-learn would round across the threshold go the other way.
    """
    nodes = list(model.graph.node)
    for position in reversed(range(len(nodes))):
        node = nodes[position]
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        source = node.input[0]
        single, rounded = f"{source}_indb_f32", f"{source}_indb_rounded"
        to_float = helper.make_node("Cast", [source], [single], to=TensorProto.FLOAT)
        to_double = helper.make_node("Cast", [single], [rounded], to=TensorProto.DOUBLE)
        node.input[0] = rounded
        model.graph.node.insert(position, to_double)
        model.graph.node.insert(position, to_float)


def _check_runs(model: onnx.ModelProto, sample: pd.DataFrame, classes) -> None:
    """Some converters emit double-precision graphs onnxruntime rejects; find out early."""
    import onnxruntime as ort

    classes = None if classes is None else python_classes(classes)
    sig = signature(model, sample, classes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    session.run(None, feeds(sig, sample))


def _graph_names(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.initializer} | {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def concat_columns(model: onnx.ModelProto, columns: list[str]) -> onnx.ModelProto:
    """Replace the single ``[None, n]`` input by n ``[None, 1]`` inputs named after columns."""
    graph = model.graph
    (features,) = graph.input
    elem_type = features.type.tensor_type.elem_type
    taken = _graph_names(graph)
    names = [c if c not in taken else f"indb_in_{c}" for c in columns]
    inputs = [helper.make_tensor_value_info(n, elem_type, [None, 1]) for n in names]
    concat = helper.make_node("Concat", names, [features.name], axis=1, name="indb_concat_columns")
    del graph.input[:]
    graph.input.extend(inputs)
    graph.node.insert(0, concat)
    return model


def parse_onnx(data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as e:
        raise ConversionError(f"not a valid ONNX model: {e}") from None
    return model


def fit_to_sample(model: onnx.ModelProto, sample: pd.DataFrame) -> onnx.ModelProto:
    """Make ready ONNX bytes take one input per sample column, matched by name."""
    names = [i.name for i in model.graph.input]
    columns = [str(c) for c in sample.columns]
    if set(names) <= set(columns):
        return model
    only = model.graph.input[0].type.tensor_type.shape.dim if len(names) == 1 else None
    if only is not None and len(only) == 2 and only[1].dim_value == len(columns):
        return concat_columns(model, columns)
    raise ConversionError(
        f"ONNX inputs {names} do not match sample columns {columns}: give the model one "
        "input per column with the column's name, or a single [None, n] input with "
        "n = number of sample columns"
    )


def _classes(model: onnx.ModelProto) -> tuple | None:
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                return tuple(_label(v) for v in helper.get_attribute_value(attribute))
    return None


def _classes_from_initializers(model: onnx.ModelProto) -> tuple | None:
    """Class labels kept as a constant (e.g. skl2onnx's double-precision linear classifiers)."""
    from onnx import numpy_helper

    fed = {n.input[0] for n in model.graph.node if n.op_type == "ArrayFeatureExtractor"}
    found = [
        numpy_helper.to_array(i)
        for i in model.graph.initializer
        if i.name in fed and i.data_type in (TensorProto.INT64, TensorProto.STRING)
    ]
    if len(found) != 1:
        return None
    return tuple(_label(v) for v in found[0].ravel())


def _label(value) -> int | str:
    """A class label read from ONNX: string tensors come back as bytes or (numpy_helper in
    recent onnx) str, integer ones as numpy or Python ints."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    return int(value)


def python_classes(values) -> tuple:
    """Class labels as plain Python ints or strings, the types SQL will return."""
    result = []
    for v in values:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool):
            v = int(v)
        result.append(v if isinstance(v, int | str) else str(v))
    return tuple(result)


def signature(model: onnx.ModelProto, sample: pd.DataFrame, classes: tuple | None = None) -> Signature:
    types = sample_types(sample)
    by_onnx_name = {i.name: i for i in model.graph.input}
    inputs = []
    for column, sql_type in types.items():
        onnx_name = column if column in by_onnx_name else f"indb_in_{column}"
        if onnx_name not in by_onnx_name:
            continue  # ready ONNX that ignores this sample column
        elem = by_onnx_name[onnx_name].type.tensor_type.elem_type
        if elem not in _ELEM_TYPES:
            raise ConversionError(
                f"ONNX input {onnx_name!r} has element type {TensorProto.DataType.Name(elem)}; "
                "indb feeds float, double, int64 or string tensors"
            )
        if (sql_type == "VARCHAR") != (_ELEM_TYPES[elem] == "string"):
            raise ConversionError(
                f"sample column {column!r} is {sql_type} but the model's input "
                f"{onnx_name!r} takes {_ELEM_TYPES[elem]}"
            )
        nullable = bool(sample[column].isna().any())
        inputs.append(Input(column, sql_type, onnx_name, _ELEM_TYPES[elem], nullable))
    missing = set(by_onnx_name) - {i.onnx_name for i in inputs}
    if missing:
        raise ConversionError(f"sample has no column for ONNX input(s) {sorted(missing)}")

    outputs = list(model.graph.output)
    first = outputs[0].type.tensor_type.elem_type
    if len(outputs) >= 2 and first in (TensorProto.INT64, TensorProto.STRING):
        classes = classes or _classes(model) or _classes_from_initializers(model)
        if classes is None:
            raise ConversionError("classifier ONNX model carries no class labels")
        label = "VARCHAR" if first == TensorProto.STRING else "BIGINT"
        return Signature(tuple(inputs), "classification", label, outputs[0].name, outputs[1].name, classes)
    if first not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        raise ConversionError(
            f"model output {outputs[0].name!r} is neither class labels with probabilities nor numeric values"
        )
    return Signature(tuple(inputs), "regression", "DOUBLE", outputs[0].name)


def feeds(sig: Signature, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """onnxruntime inputs from a DataFrame (used to check a model against its sample)."""
    result = {}
    for i in sig.inputs:
        values = frame[i.name].to_numpy()
        if i.onnx_type == "string":
            values = np.array(["" if pd.isna(v) else str(v) for v in values], dtype=object)
        result[i.onnx_name] = values.astype(ONNX_NUMPY[i.onnx_type]).reshape(-1, 1)
    return result

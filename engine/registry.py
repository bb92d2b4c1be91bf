"""The model registry: versions of ONNX models in catalog tables, with aliases (production)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from indb import audit, identifiers
from indb.backends.base import Backend, ModelRef
from indb.errors import DeploymentError, IndbError, ModelError, NotFoundError
from indb.recipe import recipe as make_recipe
from indb.sql import statement
from indb.udfs import convert, sessions
from indb.udfs.plpython_runtime import content_hash  # one hash, shared with the server's runtime
from indb.udfs.signature import Signature

# Columns every request table or scored view has; a feature may not take these names.
RESERVED_COLUMNS = (
    "id",
    "created_at",
    "model",
    "model_version",
    "runtime",
    "prediction",
    "scored_at",
    "label",
    "observed_at",
)
PARITY_ROWS = 1000
SAMPLE_ROWS = 200  # rows of the registration sample kept to verify compiled SQL
PARITY_TOLERANCE = 1e-5
EXPECTED = "indb_expected"  # stored sample columns holding the estimator's outputs (engine/compiled.py)
# Catalog columns that may be NULL and are read as text (JSON or strings).
_NULLABLE_TEXT = ("classes", "metrics", "tags", "conversion", "description", "content_hash")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as stored in ``indb.model_versions``."""

    name: str
    version: int
    sha256: str
    task: str
    signature: Signature
    size_bytes: int
    recipe: dict
    metrics: dict | None = None
    tags: dict | None = None
    description: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    conversion: dict | None = None
    onnx: bytes | None = field(default=None, repr=False)
    content_hash: str | None = None

    @property
    def classes(self) -> tuple | None:
        return self.signature.classes

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version, self.sha256, self.signature, self.content_hash)

    def describe(self) -> str:
        return self.signature.describe(f"predict_{self.name}")


def _sql(name: str, backend: Backend) -> str:
    return statement("registry", name, backend.dialect)


def _json_or_none(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ModelError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(
            value, allow_nan=False, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)
        )
    except (TypeError, ValueError) as e:
        raise ModelError(f"{what} cannot be stored as JSON: {e}") from None


def _is_sklearn(model: Any) -> bool:
    return hasattr(model, "fit") and hasattr(model, "get_params")


def _check_columns(sample: pd.DataFrame) -> list[str]:
    columns = []
    for column in sample.columns:
        name = identifiers.column_name(column)
        if name.lower() in RESERVED_COLUMNS:
            raise ModelError(
                f"sample column {name!r} clashes with a column indb adds to request tables and "
                f"views ({', '.join(RESERVED_COLUMNS)}); rename it"
            )
        columns.append(name)
    if len({c.lower() for c in columns}) != len(columns):
        raise ModelError(f"sample columns {columns} differ only by case; SQL cannot tell them apart")
    return columns


def _run_sample(sig: Signature, data: bytes, sample: pd.DataFrame) -> list:
    try:
        session = sessions.build(data)
        outputs = [sig.prediction_output] + ([sig.probability_output] if sig.probability_output else [])
        return session.run(outputs, convert.feeds(sig, sample))
    except Exception as e:
        raise ModelError(f"the model does not run on its sample: {e}") from None


def decisive_mismatches(got, expected, proba: np.ndarray, classes: tuple) -> int:
    """Labels that differ where the reference was not a tie: with two classes at equal
    probability (within PARITY_TOLERANCE) either label is right."""
    position = {c: i for i, c in enumerate(classes)}
    count = 0
    for row, (a, b) in enumerate(zip(got, expected, strict=True)):
        if str(a) == str(b):
            continue
        chosen = proba[row, position[a.item() if isinstance(a, np.generic) else a]]
        if proba[row].max() - chosen > PARITY_TOLERANCE:
            count += 1
    return count


def _parity(estimator: Any, sig: Signature, results: list, sample: pd.DataFrame) -> dict:
    """Compare the ONNX outputs with the estimator's own on the sample; refuse a bad conversion."""
    expected = np.asarray(estimator.predict(sample))
    got = np.asarray(results[0]).reshape(len(sample), -1)
    report: dict[str, Any] = {"rows": len(sample), "tolerance": PARITY_TOLERANCE}
    if sig.task == "classification":
        labels = np.array(convert.python_classes(expected), dtype=object)
        if hasattr(estimator, "predict_proba"):
            proba = estimator.predict_proba(sample)
            difference = np.abs(np.asarray(results[1]) - proba)
            mismatches = decisive_mismatches(got.ravel(), labels, proba, sig.classes)
        else:  # the second output holds scores, not probabilities: the labels must agree
            difference = np.zeros(0)
            mismatches = int(np.sum(got.ravel().astype(str) != labels.astype(str)))
        report["label_mismatches"] = mismatches
    else:
        scale = np.maximum(1.0, np.abs(expected.ravel()))
        difference = np.abs(got.ravel() - expected.ravel()) / scale
        mismatches = 0
    report["max_abs_diff"] = float(np.nanmax(difference)) if difference.size else 0.0
    # The estimator's own outputs on the stored sample rows: compiled SQL is verified against them.
    head = min(len(sample), SAMPLE_ROWS)
    if expected.ndim == 1 or expected.shape[1] == 1:  # one output per row, as indb scores
        first = expected[:head].ravel()
        is_label = sig.task == "classification"
        outputs = {EXPECTED: list(convert.python_classes(first)) if is_label else first.tolist()}
        if is_label and hasattr(estimator, "predict_proba"):
            outputs.update({f"{EXPECTED}_p{i}": column.tolist() for i, column in enumerate(proba[:head].T)})
        report[EXPECTED] = outputs
    if mismatches or report["max_abs_diff"] > PARITY_TOLERANCE:
        raise ModelError(
            f"the ONNX conversion of {type(estimator).__name__} disagrees with scikit-learn on "
            f"its sample ({mismatches} label mismatches, max difference "
            f"{report['max_abs_diff']:.3g} > {PARITY_TOLERANCE}); it was not registered"
        )
    return report


def prepare(model: Any, sample: pd.DataFrame) -> tuple[bytes, Signature, dict, dict | None]:
    """ONNX bytes, signature, recipe and conversion report for a model and its sample."""
    try:
        convert.sample_types(sample)
        columns = _check_columns(sample)
        if isinstance(model, bytes | bytearray | memoryview):
            proto = convert.fit_to_sample(convert.parse_onnx(bytes(model)), sample)
            recipe = {"estimator": None, "features": columns, "label": None, "source": "onnx"}
            estimator = None
        elif _is_sklearn(model):
            from sklearn.exceptions import NotFittedError
            from sklearn.utils.validation import check_is_fitted

            try:
                check_is_fitted(model)
            except NotFittedError:
                raise ModelError(f"{type(model).__name__} is not fitted; call fit() first") from None
            proto = convert.from_sklearn(model, sample)
            recipe = make_recipe(model, columns)
            estimator = model
        else:
            raise ModelError(
                f"cannot register a {type(model).__name__}: give a fitted scikit-learn "
                "estimator or pipeline, or ONNX bytes"
            )
        classes = getattr(estimator, "classes_", None)
        classes = None if classes is None else convert.python_classes(classes)
        sig = convert.signature(proto, sample, classes)
    except convert.ConversionError as e:
        raise ModelError(str(e)) from None
    data = proto.SerializeToString()
    check = sample.head(PARITY_ROWS)
    results = _run_sample(sig, data, check)
    conversion = _parity(estimator, sig, results, check) if estimator is not None else None
    return data, sig, recipe, conversion


def register(
    backend: Backend,
    name: str,
    model: Any,
    *,
    sample: pd.DataFrame,
    metrics: dict | None = None,
    tags: dict | None = None,
    description: str | None = None,
    training_set: Any = None,
    allow_nan: bool = False,
) -> ModelVersion:
    name = identifiers.model_name(name)
    if not isinstance(allow_nan, bool):
        raise ModelError(f"allow_nan must be True or False, got {allow_nan!r}")
    lineage = _training_set(backend, training_set)
    data, sig, recipe, conversion = prepare(model, sample)
    sig = dataclasses.replace(sig, allow_nan=allow_nan)
    expected = pd.DataFrame((conversion or {}).pop(EXPECTED, {}))
    stored = pd.concat([sample.head(SAMPLE_ROWS).reset_index(drop=True), expected], axis=1)
    if lineage is not None:
        recipe["training_set"] = {"name": lineage[0], "version": lineage[1]}
        recipe["label"] = _training_set_label(backend, lineage)
    sha256 = hashlib.sha256(data).hexdigest()
    values = {
        "model": name,
        "onnx": data,
        "sha256": sha256,
        "size_bytes": len(data),
        "task": sig.task,
        "signature": sig.describe(f"predict_{name}"),
        "inputs": sig.inputs_json(),
        "outputs": sig.outputs_json(),
        "classes": sig.classes_json(),
        "recipe": json.dumps(recipe),
        "metrics": _json_or_none(metrics, "metrics"),
        "tags": _json_or_none(tags, "tags"),
        "conversion": None if conversion is None else json.dumps(conversion),
        "description": description,
        "created_by": backend.user,
        "sample": stored.to_json(orient="split", index=False),
    }
    values["content_hash"] = content_hash(
        sha256, values["inputs"], values["outputs"], values["classes"], values["recipe"]
    )
    with backend.transaction():
        if not backend.rows(_sql("get_model", backend), {"name": name}):
            backend.execute(
                _sql("insert_model", backend),
                {"name": name, "description": description, "created_by": backend.user},
            )
        ((version,),) = backend.rows(_sql("next_version", backend), {"model": name})
        backend.execute(_sql("insert_version", backend), {**values, "version": version})
        if lineage is not None:
            backend.execute(
                statement("feature_store", "insert_model_training_set", backend.dialect),
                {
                    "model": name,
                    "version": version,
                    "training_set": lineage[0],
                    "training_set_version": lineage[1],
                },
            )
        ref = ModelRef(name, version, sha256, sig, values["content_hash"])
        backend.prepare_model(ref)
        is_default = default_version(backend, name) == version
        for text in backend.model_sql(ref, default=is_default):
            backend.execute(text)
        audit.record(
            backend,
            "register_model",
            f"{name} v{version}",
            {"sha256": sha256, "content_hash": values["content_hash"]},
        )
    return get(backend, name, version, with_bytes=False)


def _training_set(backend: Backend, training_set: Any) -> tuple[str, int] | None:
    """(name, version) of a materialized training set given as an object, a name or a pair."""
    from indb.feature_store import training

    if training_set is None:
        return None
    if isinstance(training_set, training.TrainingSet):
        if training_set.name is None:
            raise ModelError("training_set must be materialized (materialize=True, name=...) to be recorded")
        return training.resolve(backend, training_set.name, training_set.version)
    if isinstance(training_set, str):
        return training.resolve(backend, training_set)
    if isinstance(training_set, tuple) and len(training_set) == 2:
        return training.resolve(backend, *training_set)
    raise ModelError(
        "training_set must be a materialized TrainingSet, a training set name or (name, version), "
        f"got {type(training_set).__name__}"
    )


def _training_set_label(backend: Backend, lineage: tuple[str, int]) -> str | None:
    """The label column of a materialized training set (what the recipe trains on)."""
    found = backend.rows(_sql("training_set_label", backend), {"name": lineage[0], "version": lineage[1]})
    return found[0][0] if found else None


def model_names(backend: Backend) -> list[str]:
    return [r[0] for r in backend.rows(_sql("list_model_names", backend))]


def _require_model(backend: Backend, name: str) -> None:
    if not backend.rows(_sql("get_model", backend), {"name": name}):
        raise NotFoundError("model", name, model_names(backend))


def default_version(backend: Backend, name: str) -> int:
    ((version,),) = backend.rows(_sql("default_version", backend), {"model": name})
    if version is None:
        _require_model(backend, name)
        raise NotFoundError("a version of model", name, [])
    return int(version)


def resolve(backend: Backend, name: str, version: int | str | None) -> int:
    """A version number from None (the default), a number, or an alias."""
    identifiers.model_name(name)
    _require_model(backend, name)
    if version is None:
        return default_version(backend, name)
    if isinstance(version, str) and not version.isdigit():
        found = backend.rows(
            _sql("alias_version", backend),
            {"model": name, "alias": identifiers.alias_name(version)},
        )
        if not found:
            raise NotFoundError(f"alias of model {name!r}", version, [])
        return int(found[0][0])
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise TypeError(f"version must be an int, an alias or None, got {type(version).__name__}")
    return int(version)


def _text(value: Any) -> str | None:
    """A nullable text column of a query's frame: pandas 3 gives NaN, not None, for a NULL in a
    text column (a regressor's classes once the catalog also holds a classifier)."""
    return value if isinstance(value, str) else None


def _from_row(row: dict, with_bytes: bool) -> ModelVersion:
    row = {k: (_text(v) if k in _NULLABLE_TEXT else v) for k, v in row.items()}
    sig = Signature.from_catalog(row["inputs"], row["outputs"], row["classes"])
    loads = lambda v: None if v is None else json.loads(v)  # noqa: E731
    return ModelVersion(
        name=row["model"],
        version=int(row["version"]),
        sha256=row["sha256"],
        task=row["task"],
        signature=sig,
        size_bytes=int(row["size_bytes"]),
        recipe=loads(row["recipe"]),
        metrics=loads(row["metrics"]),
        tags=loads(row["tags"]),
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        conversion=loads(row["conversion"]),
        onnx=bytes(row["onnx"]) if with_bytes else None,
        content_hash=_row_content_hash(row),
    )


def _row_content_hash(row: dict) -> str | None:
    """The hash recorded at registration; for versions registered before it existed, the
    hash of the row as it is now (its bytes were checked against their sha256)."""
    recorded = row.get("content_hash")
    if isinstance(recorded, str):
        return recorded
    if any(not isinstance(row.get(k), str) for k in ("sha256", "inputs", "outputs", "recipe")):
        return None
    classes = row.get("classes")
    return content_hash(
        row["sha256"],
        row["inputs"],
        row["outputs"],
        classes if isinstance(classes, str) else None,
        row["recipe"],
    )


def get(
    backend: Backend, name: str, version: int | str | None = None, *, with_bytes: bool = True
) -> ModelVersion:
    """One version; its bytes are loaded and checked against the recorded sha256."""
    number = resolve(backend, name, version)
    frame = backend.query(_sql("get_version", backend), {"model": name, "version": number})
    if frame.empty:
        known = [str(v) for v in versions_frame(backend, name)["version"]]
        raise NotFoundError(f"version of model {name!r}", number, known)
    row = frame.iloc[0].to_dict()
    sessions.verify(name, number, bytes(row["onnx"]), row["sha256"])
    return _from_row(row, with_bytes)


def versions_frame(backend: Backend, name: str) -> pd.DataFrame:
    return backend.query(_sql("list_versions", backend), {"model": name})


def versions(backend: Backend, name: str) -> list[ModelVersion]:
    """Every version of a model, oldest first; raises IntegrityError on a corrupted blob."""
    identifiers.model_name(name)
    _require_model(backend, name)
    result = []
    for row in versions_frame(backend, name).to_dict("records"):
        if not row["integrity_ok"]:
            sessions.verify(name, int(row["version"]), b"", row["sha256"])
        result.append(_from_row(row, with_bytes=False))
    return result


class AliasWarning(UserWarning):
    """A deployment and an alias of its model disagree (the deployment is pinned elsewhere)."""


PRODUCTION = "production"


def followed_alias(backend: Backend, name: str, version: int | str | None) -> str | None:
    """The alias a deployment made with ``version`` follows: the alias itself when deployed
    by alias, production when deployed with no version while the model has a production
    alias (the version predict_<model>() uses), else None: pinned to its version."""
    if isinstance(version, str) and not version.isdigit():
        return identifiers.alias_name(version)
    if version is None and backend.rows(_sql("alias_version", backend), {"model": name, "alias": PRODUCTION}):
        return PRODUCTION
    return None


def record_deployment_alias(
    backend: Backend, table: str, model: str, version: int, alias: str | None
) -> None:
    """Store which alias a deployment follows (None: pinned); warn when it is pinned to a
    version other than production's. Runs inside the deploy transaction."""
    backend.execute(_sql("set_deployment_alias", backend), {"table_name": table, "alias": alias})
    if alias is None:
        found = backend.rows(_sql("alias_version", backend), {"model": model, "alias": PRODUCTION})
        if found and int(found[0][0]) != version:
            _warn_pinned(table, model, version, int(found[0][0]))


def _warn_pinned(table: str, model: str, version: int, production: int) -> None:
    warnings.warn(
        f"deployment {table!r} is pinned to {model} version {version} while alias production names "
        f"version {production}; deploy it with version='production' to follow production",
        AliasWarning,
        stacklevel=4,
    )


def _deployments_of(backend: Backend, name: str) -> list[dict]:
    columns = ("table_name", "version", "runtime", "mode", "features", "alias")
    return [
        dict(zip(columns, row, strict=True))
        for row in backend.rows(_sql("deployments_of_model", backend), {"model": name})
    ]


def _move_followers(backend: Backend, name: str, alias: str, version: int) -> list[str]:
    """Redeploy every deployment following ``alias`` to ``version`` (same runtime, mode and
    feature sets); warn about pinned deployments that now disagree with production."""
    from indb import deployments

    moved = []
    for row in _deployments_of(backend, name):
        if row["alias"] == alias and int(row["version"]) != version:
            features = json.loads(row["features"]) if isinstance(row["features"], str) else row["features"]
            sets = [f"{n}@{v}" for n, v in features["feature_sets"]] if features else None
            try:
                deployments.deploy(
                    backend,
                    name,
                    table=row["table_name"],
                    version=alias,
                    runtime=row["runtime"],
                    mode=row["mode"],
                    features_from=sets,
                )
            except IndbError as e:
                raise DeploymentError(
                    f"alias {alias!r} of model {name!r} was not moved to version {version}: deployment "
                    f"{row['table_name']!r} follows it and cannot take that version ({e}); deploy it by "
                    "version first to pin it"
                ) from None
            moved.append(row["table_name"])
        elif row["alias"] is None and alias == PRODUCTION and int(row["version"]) != version:
            _warn_pinned(row["table_name"], name, int(row["version"]), version)
    return moved


def set_alias(backend: Backend, name: str, alias: str, version: int | str) -> int:
    """Point ``alias`` at a version; moving production also moves ``predict_<model>``.
    Deployments that follow the alias are redeployed to the version in the same transaction
    (all or nothing); pinned ones stay, with an AliasWarning when production leaves them."""
    alias = identifiers.alias_name(alias)
    target = get(backend, name, version, with_bytes=False)
    with backend.transaction():
        backend.execute(_sql("delete_alias", backend), {"model": name, "alias": alias})
        backend.execute(
            _sql("insert_alias", backend),
            {"model": name, "alias": alias, "version": target.version},
        )
        _refresh_default(backend, name)
        moved = _move_followers(backend, name, alias, target.version)
        audit.record(
            backend, "set_alias", f"{name} v{target.version}", {"alias": alias, "deployments_moved": moved}
        )
    return target.version


def remove_alias(backend: Backend, name: str, alias: str) -> None:
    """Drop an alias; deployments that followed it are pinned to the version they score with
    (an AliasWarning says which)."""
    alias = identifiers.alias_name(alias)
    resolve(backend, name, alias)
    with backend.transaction():
        backend.execute(_sql("delete_alias", backend), {"model": name, "alias": alias})
        _refresh_default(backend, name)
        pinned = []
        for row in _deployments_of(backend, name):
            if row["alias"] == alias:
                backend.execute(
                    _sql("set_deployment_alias", backend), {"table_name": row["table_name"], "alias": None}
                )
                pinned.append(row["table_name"])
                warnings.warn(
                    f"deployment {row['table_name']!r} followed alias {alias!r} of {name}, which was "
                    f"removed: it is now pinned to version {row['version']}",
                    AliasWarning,
                    stacklevel=3,
                )
        audit.record(backend, "remove_alias", name, {"alias": alias, "deployments_pinned": pinned})


def _refresh_default(backend: Backend, name: str) -> None:
    current = get(backend, name, None, with_bytes=False)
    backend.prepare_model(current.ref)
    for text in backend.model_sql(current.ref, default=True):
        backend.execute(text)


def install_all(backend: Backend) -> None:
    """Make every registered version callable on this connection (run at connect)."""
    for row in backend.query(statement("registry", "all_versions", backend.dialect)).to_dict("records"):
        sig = Signature.from_catalog(row["inputs"], row["outputs"], _text(row["classes"]))
        backend.prepare_model(ModelRef(row["model"], int(row["version"]), row["sha256"], sig))


_UNSET: Any = object()


def update(
    backend: Backend,
    name: str,
    version: int | str | None = None,
    *,
    tags: dict | None = _UNSET,
    description: str | None = _UNSET,
    replace_tags: bool = False,
) -> ModelVersion | None:
    """Edit tags and descriptions after registration, in one audited transaction.

    ``tags`` are merged into a version's tags (a key given None is removed; ``replace_tags``
    replaces them all); ``version`` is a number, an alias, or None for the default version.
    ``description``: with a ``version``, that version's; without, the model's own (what
    ``indb.models`` and ``db.models()`` show). Returns the (default) version as now stored.
    """
    name = identifiers.model_name(name)
    if tags is _UNSET and description is _UNSET:
        raise ModelError("update_model needs tags= and/or description=")
    if description is not _UNSET and description is not None and not isinstance(description, str):
        raise ModelError(f"description must be a string or None, got {type(description).__name__}")
    if tags is not _UNSET and tags is not None and not isinstance(tags, dict):
        raise ModelError(f"tags must be a dict, got {type(tags).__name__}")
    if tags is not _UNSET and tags is not None and not all(isinstance(k, str) and k for k in tags):
        raise ModelError(f"tag names must be non-empty strings, got {list(tags)}")
    target = get(backend, name, version, with_bytes=False)
    changes: dict[str, Any] = {}
    with backend.transaction():
        if tags is not _UNSET:
            before = target.tags or {}
            after = {} if replace_tags or tags is None else dict(before)
            for key, value in (tags or {}).items():
                if value is None:
                    after.pop(key, None)
                else:
                    after[key] = value
            stored = _json_or_none(after, "tags") if after else None
            backend.execute(
                _sql("update_version_tags", backend),
                {"model": name, "version": target.version, "tags": stored},
            )
            changes["tags"] = {"before": before, "after": json.loads(stored) if stored else {}}
        if description is not _UNSET:
            if version is None:
                before = backend.rows(_sql("get_model", backend), {"name": name})[0][1]
                backend.execute(
                    _sql("update_model_description", backend), {"name": name, "description": description}
                )
            else:
                before = target.description
                backend.execute(
                    _sql("update_version_description", backend),
                    {"model": name, "version": target.version, "description": description},
                )
            changes["description"] = {"before": before, "after": description}
        what = name if tags is _UNSET and version is None else f"{name} v{target.version}"
        audit.record(backend, "update_model", what, changes)
    return get(backend, name, target.version, with_bytes=False)

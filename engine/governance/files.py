"""Models as files: a version exported to a folder git can keep, imported elsewhere only after
its bytes and its outputs on the recorded sample check out, and verified against metric and
drift limits for CI.

The folder holds ``model.onnx`` (the stored bytes), ``indb-model.json`` (everything needed to
register it again: signature, classes, recipe, metrics, tags, lineage, sha256, the
verification sample and the outputs recorded for it) and ``MODEL.md`` for people.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from indb import audit, identifiers, registry
from indb.backends.base import Backend, ModelRef
from indb.errors import ModelError
from indb.sql import statement
from indb.udfs.plpython_runtime import content_hash
from indb.udfs.signature import Signature

ONNX_FILE = "model.onnx"
JSON_FILE = "indb-model.json"
CARD_FILE = "MODEL.md"
FORMAT = 1


def _sql(name: str, backend: Backend) -> str:
    return statement("model_files", name, backend.dialect)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# -- outputs on the sample -------------------------------------------------------------------
def _onnx_outputs(sig: Signature, data: bytes, inputs: pd.DataFrame) -> dict[str, list]:
    """onnxruntime's outputs on ``inputs`` in the stored sample's layout: the prediction as
    ``indb_expected`` and, for classifiers, each class probability as ``indb_expected_p<i>``."""
    results = registry._run_sample(sig, data, inputs)
    first = np.asarray(results[0]).reshape(len(inputs), -1)[:, 0]
    if sig.task != "classification":
        return {registry.EXPECTED: [float(v) for v in first]}
    outputs: dict[str, list] = {
        registry.EXPECTED: [v.item() if isinstance(v, np.generic) else v for v in first]
    }
    if sig.probability_output and len(results) > 1:
        proba = results[1]
        if isinstance(proba, list) and proba and isinstance(proba[0], dict):  # a ZipMap
            proba = [[row[c] for c in sig.classes] for row in proba]
        for i, column in enumerate(np.asarray(proba, dtype=float).T):
            outputs[f"{registry.EXPECTED}_p{i}"] = column.tolist()
    return outputs


def _split(sample: pd.DataFrame, sig: Signature) -> tuple[pd.DataFrame, pd.DataFrame]:
    missing = [c for c in sig.columns if c not in sample.columns]
    if missing:
        raise ModelError(f"the recorded sample lacks the model's inputs {missing}")
    expected = sample[[c for c in sample.columns if str(c).startswith(registry.EXPECTED)]]
    return sample[sig.columns], expected


def _compare(sig: Signature, got: dict[str, list], expected: pd.DataFrame) -> str | None:
    """Why the ONNX outputs disagree with the recorded ones (None: they agree)."""
    tolerance = registry.PARITY_TOLERANCE
    if registry.EXPECTED not in expected or registry.EXPECTED not in got:
        return "the recorded sample has no outputs to compare with"
    labels = np.asarray(got[registry.EXPECTED], dtype=object)
    want = expected[registry.EXPECTED].to_numpy(dtype=object)
    if sig.task != "classification":
        a, b = labels.astype(float), want.astype(float)
        worst = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if len(a) else 0.0
        return None if worst <= tolerance else f"predictions differ by up to {worst:.3g} (> {tolerance})"
    columns = [c for c in expected.columns if c != registry.EXPECTED]
    if columns and len(columns) == len(sig.classes or ()):
        recorded = expected[columns].to_numpy(dtype=float)
        mine = np.column_stack([got.get(c, [np.nan] * len(labels)) for c in columns]).astype(float)
        worst = float(np.nanmax(np.abs(mine - recorded))) if recorded.size else 0.0
        if not worst <= tolerance:
            return f"class probabilities differ by up to {worst:.3g} (> {tolerance})"
        mismatches = registry.decisive_mismatches(labels, want, recorded, sig.classes)
    else:
        mismatches = int(np.sum(labels.astype(str) != want.astype(str)))
    return f"{mismatches} of {len(labels)} predicted labels differ" if mismatches else None


# -- export ----------------------------------------------------------------------------------
def describe(backend: Backend, name: str, version: int | str | None = None) -> tuple[dict, bytes]:
    """The ``indb-model.json`` document of a version and its ONNX bytes."""
    mv = registry.get(backend, name, version)
    ((text, training_set, training_set_version),) = backend.rows(
        _sql("version_extras", backend), {"model": mv.name, "version": mv.version}
    )
    text = json.dumps(text) if isinstance(text, dict) else text
    source = "estimator"
    if text:
        sample = pd.read_json(io.StringIO(text), orient="split")
        inputs, expected = _split(sample, mv.signature)
    else:
        raise ModelError(f"model {mv.name!r} version {mv.version} has no stored sample to export with")
    if registry.EXPECTED not in expected:  # registered as ONNX: record onnxruntime's outputs
        source = "onnxruntime"
        outputs = pd.DataFrame(_onnx_outputs(mv.signature, mv.onnx, inputs))
        sample = pd.concat([inputs.reset_index(drop=True), outputs], axis=1)
    lineage = None
    if training_set is not None:
        lineage = {"training_set": training_set, "training_set_version": int(training_set_version)}
    document = {
        "format": FORMAT,
        "name": mv.name,
        "version": mv.version,
        "sha256": mv.sha256,
        "size_bytes": mv.size_bytes,
        "task": mv.task,
        "signature": {
            "sql": mv.describe(),
            "inputs": json.loads(mv.signature.inputs_json()),
            "outputs": json.loads(mv.signature.outputs_json()),
        },
        "classes": None if mv.classes is None else list(mv.classes),
        "recipe": mv.recipe,
        "metrics": mv.metrics,
        "tags": mv.tags,
        "description": mv.description,
        "conversion": mv.conversion,
        "lineage": lineage,
        "created_by": mv.created_by,
        "created_at": None if mv.created_at is None else str(mv.created_at),
        "sample": {"outputs_from": source, **json.loads(sample.to_json(orient="split", index=False))},
    }
    return document, mv.onnx


def _card(doc: dict) -> str:
    lines = [f"# {doc['name']} version {doc['version']}", ""]
    if doc.get("description"):
        lines += [doc["description"], ""]
    lines += [
        f"- task: {doc['task']}",
        f"- sha256: `{doc['sha256']}` ({doc['size_bytes']} bytes)",
        f"- signature: `{doc['signature']['sql']}`",
    ]
    if doc.get("classes"):
        lines.append(f"- classes: {', '.join(map(str, doc['classes']))}")
    recipe = doc.get("recipe") or {}
    estimator = recipe.get("estimator")
    estimator = estimator.get("estimator") if isinstance(estimator, dict) else estimator
    lines.append(f"- estimator: {estimator or recipe.get('source') or 'unknown'}")
    if doc.get("lineage"):
        lines.append(
            f"- trained on: training set {doc['lineage']['training_set']} "
            f"version {doc['lineage']['training_set_version']}"
        )
    lines.append(f"- registered by {doc.get('created_by')} at {doc.get('created_at')}")
    if doc.get("metrics"):
        lines += ["", "## Metrics", ""] + [f"- {k}: {v}" for k, v in doc["metrics"].items()]
    if doc.get("tags"):
        lines += ["", "## Tags", ""] + [f"- {k}: {v}" for k, v in doc["tags"].items()]
    rows = len(doc["sample"]["data"])
    lines += [
        "",
        "## Verification",
        "",
        f"`indb models import` checks the sha256 of `{ONNX_FILE}` and re-runs it on the {rows} sample rows "
        f"in `{JSON_FILE}` against the outputs recorded there (from the {doc['sample']['outputs_from']}).",
        "",
    ]
    return "\n".join(lines)


def export(backend: Backend, name: str, directory: str | Path, version: int | str | None = None) -> Path:
    """Write ``model.onnx``, ``indb-model.json`` and ``MODEL.md`` of a version into ``directory``."""
    document, data = describe(backend, name, version)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ONNX_FILE).write_bytes(data)
    (folder / JSON_FILE).write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    (folder / CARD_FILE).write_text(_card(document), encoding="utf-8")
    return folder


# -- import ----------------------------------------------------------------------------------
def read(directory: str | Path) -> tuple[dict, bytes, Signature, pd.DataFrame]:
    """The folder's document, bytes, signature and sample, after the sha256 and output checks."""
    folder = Path(directory)
    try:
        data = (folder / ONNX_FILE).read_bytes()
        document = json.loads((folder / JSON_FILE).read_text(encoding="utf-8"))
        sig_doc = document["signature"]
        sig = Signature.from_catalog(
            json.dumps(sig_doc["inputs"]),
            json.dumps(sig_doc["outputs"]),
            None if document.get("classes") is None else json.dumps(document["classes"]),
        )
        sample_doc = document["sample"]
        sample = pd.read_json(
            io.StringIO(json.dumps({"columns": sample_doc["columns"], "data": sample_doc["data"]})),
            orient="split",
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{folder} is not an exported indb model: {e}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != document.get("sha256"):
        raise ModelError(
            f"{folder / ONNX_FILE} has sha256 {found[:12]}..., but {JSON_FILE} records "
            f"{str(document.get('sha256'))[:12]}...: the file was changed; nothing was registered"
        )
    inputs, expected = _split(sample, sig)
    problem = _compare(sig, _onnx_outputs(sig, data, inputs), expected)
    if problem:
        raise ModelError(
            f"{folder / ONNX_FILE} does not reproduce the outputs recorded in {JSON_FILE} on its "
            f"{len(inputs)} sample rows ({problem}); nothing was registered"
        )
    return document, data, sig, sample


def import_(
    backend: Backend, directory: str | Path, name: str | None = None
) -> tuple[registry.ModelVersion, bool]:
    """Register an exported folder as a new version (name: the exported one unless given).
    Returns (the version, whether it was created); the same sha256 again is a no-op."""
    document, data, sig, sample = read(directory)
    name = identifiers.model_name(name or document["name"])
    existing = (
        backend.rows(_sql("version_by_sha256", backend), {"model": name, "sha256": document["sha256"]})
        if name in registry.model_names(backend)
        else []
    )
    if existing:
        return registry.get(backend, name, int(existing[0][0]), with_bytes=False), False
    inputs, _ = _split(sample, sig)
    with backend.transaction():
        mv = registry.register(
            backend,
            name,
            data,
            sample=inputs,
            metrics=document.get("metrics"),
            tags=document.get("tags"),
            description=document.get("description"),
            allow_nan=sig.allow_nan,
        )
        if mv.sha256 != document["sha256"]:
            raise ModelError(
                f"registering {ONNX_FILE} changed its bytes (sha256 {mv.sha256[:12]}...); "
                "nothing was registered"
            )
        if (mv.classes and list(mv.classes)) != (document.get("classes") or None):
            raise ModelError(
                f"the ONNX model's classes {mv.classes} differ from {document.get('classes')} in "
                f"{JSON_FILE}; nothing was registered"
            )
        recipe = json.dumps(document.get("recipe") or {})
        recorded = content_hash(
            mv.sha256,
            mv.signature.inputs_json(),
            mv.signature.outputs_json(),
            mv.signature.classes_json(),
            recipe,
        )
        backend.execute(
            _sql("set_imported", backend),
            {
                "model": name,
                "version": mv.version,
                "recipe": recipe,
                "sample": sample.to_json(orient="split", index=False),
                "conversion": None
                if document.get("conversion") is None
                else json.dumps(document["conversion"]),
                "content_hash": recorded,
            },
        )
        lineage = document.get("lineage") or {}
        backend.execute(
            _sql("record_import", backend),
            {
                "model": name,
                "version": mv.version,
                "source_model": document["name"],
                "source_version": int(document["version"]),
                "sha256": mv.sha256,
                "training_set": lineage.get("training_set"),
                "training_set_version": lineage.get("training_set_version"),
                "user": backend.user,
            },
        )
        ref = ModelRef(name, mv.version, mv.sha256, mv.signature, recorded)
        backend.prepare_model(ref)
        for text in backend.model_sql(ref, default=registry.default_version(backend, name) == mv.version):
            backend.execute(text)
        audit.record(
            backend,
            "import_model",
            f"{name} v{mv.version}",
            {
                "sha256": mv.sha256,
                "from": f"{document['name']} v{document['version']}",
                "lineage": document.get("lineage"),
            },
        )
    return registry.get(backend, name, mv.version, with_bytes=False), True


def imported(backend: Backend, name: str, version: int) -> dict | None:
    """Where an imported version came from (``indb.model_imports``), None if it was not imported:
    source model and version, the training set its export named and whether that is here."""
    found = backend.rows(_sql("import_of_version", backend), {"model": name, "version": int(version)})
    if not found:
        return None
    ((model, number, training_set, training_set_version, present),) = found
    return {
        "source_model": model,
        "source_version": int(number),
        "training_set": training_set,
        "training_set_version": None if training_set_version is None else int(training_set_version),
        "present": bool(present),
    }


def imported_notes(backend: Backend, name: str, version: int) -> list[str]:
    """What a reader of an imported version's lineage must know, as sentences."""
    found = imported(backend, name, version)
    if found is None:
        return []
    source = f"{found['source_model']} version {found['source_version']}"
    where = f"{name} version {version} was imported (exported as {source})"
    if found["training_set"] is None:
        return [f"{where}; its export named no training set"]
    named = f"training set {found['training_set']}@{found['training_set_version']}"
    if found["present"]:
        return [f"{where}; its {named} is in this database too"]
    return [
        f"{where}; its {named} is not in this database (training sets do not travel with an export): "
        "its lineage ends here and reproduce needs the database it was trained in"
    ]


# -- verify ----------------------------------------------------------------------------------
@dataclass
class Check:
    kind: str  # "metric" (a minimum) or "drift" (a maximum)
    metric: str
    limit: float
    value: float | None
    status: str  # passed, failed, missing (no such metric), no_data (nothing monitored)
    detail: str = ""
    allowed: bool = False  # no_data was accepted (allow_no_drift_data)

    @property
    def ok(self) -> bool:
        return self.status == "passed" or (self.status == "no_data" and self.allowed)


@dataclass
class Report:
    model: str
    version: int
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts a reader should know, not checks

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "version": self.version,
            "passed": self.passed,
            "checks": [{**asdict(c), "ok": c.ok} for c in self.checks],
            "notes": self.notes,
        }

    def text(self) -> str:
        lines = [f"{self.model} version {self.version}: {'PASSED' if self.passed else 'FAILED'}"]
        for c in self.checks:
            sign = ">=" if c.kind == "metric" else "<="
            shown = "-" if c.value is None else f"{c.value:.4g}"
            mark = "ok  " if c.ok else "FAIL"
            want = f"(want {sign} {c.limit:g})"
            lines.append(f"  {mark} {c.kind} {c.metric} {shown} {want} {c.status} {c.detail}".rstrip())
        if not self.checks:
            lines.append("  (no checks given: the version exists and its bytes match their sha256)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _limits(values: dict | None, what: str) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ModelError(f"{what} must be a dict of metric -> number, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if (
            not isinstance(key, str)
            or not key
            or isinstance(value, bool)
            or not isinstance(value, int | float)
        ):
            raise ModelError(f"{what} needs metric names and numbers, got {key!r}: {value!r}")
        out[key] = float(value)
    return out


def metrics_of(backend: Backend, name: str, version: int) -> dict[str, tuple[float, str]]:
    """metric -> (value, where from): the version's registered metrics, then the holdout
    metrics of the latest training run that evaluated it (which win)."""
    mv = registry.get(backend, name, version, with_bytes=False)
    found = {
        k: (float(v), "registered")
        for k, v in (mv.metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    for metric, value in backend.rows(
        _sql("latest_run_metrics", backend), {"model": name, "version": version}
    ):
        if value is not None:
            found[metric] = (float(value), "latest training run")
    return found


def verify(
    backend: Backend,
    name: str,
    version: int | str | None = None,
    *,
    min_metrics: dict | None = None,
    max_drift: dict | None = None,
    allow_no_drift_data: bool = False,
) -> Report:
    """Check a version's metrics against minimums and the latest drift of the deployments
    serving it against maximums. Raises on bad input; a failed check is in the report.

    A drift limit with no monitor results to hold it against (the version is not deployed, no
    monitor watches it, or none has run) fails: a gate that passes on nothing would let a model
    through unwatched. ``allow_no_drift_data`` accepts it (reported as ``no_data``), for a
    pipeline that verifies before the first deployment."""
    minimums, maximums = _limits(min_metrics, "min_metrics"), _limits(max_drift, "max_drift")
    mv = registry.get(backend, name, version)  # the bytes are checked against their sha256
    report = Report(mv.name, mv.version)
    metrics = metrics_of(backend, mv.name, mv.version)
    for metric, limit in minimums.items():
        if metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            report.checks.append(Check("metric", metric, limit, None, "missing", f"(recorded: {known})"))
            continue
        value, source = metrics[metric]
        report.checks.append(
            Check("metric", metric, limit, value, "passed" if value >= limit else "failed", f"({source})")
        )
    if maximums:
        drift = backend.query(_sql("latest_drift", backend), {"model": mv.name, "version": mv.version})
        for metric, limit in maximums.items():
            rows = drift[drift["metric"] == metric]
            if rows.empty:
                detail = (
                    f"(no drift data: no monitor results of {metric} for a deployment serving "
                    f"{mv.name} version {mv.version}"
                    + ("; accepted)" if allow_no_drift_data else "; --allow-no-drift-data accepts that)")
                )
                report.checks.append(
                    Check("drift", metric, limit, None, "no_data", detail, allowed=allow_no_drift_data)
                )
                continue
            worst = rows.loc[rows["value"].astype(float).idxmax()]
            value = float(worst["value"])
            where = f"({worst['feature']} on {worst['deployment']}, monitor {worst['monitor']})"
            report.checks.append(
                Check("drift", metric, limit, value, "passed" if value <= limit else "failed", where)
            )
    report.notes += imported_notes(backend, mv.name, mv.version)
    return report

"""Lineage you can query (``indb.lineage``), as a tree, and reproducing a version from it.

``indb.lineage`` (migration 018) holds every edge, one row each; ``tree`` walks it from one model
version: upstream, what the version came from (training run, training set version, feature set
versions, their sources, the spine, the parent version), and downstream, what uses it
(deployments now and before, later versions retrained from it).

Prediction rows are not in the view: each ``<table>_predictions`` row holds the
``model_version`` that scored it, and a ``features_from`` deployment records the feature values
it scored with the request, so ``SELECT * FROM <table>_predictions WHERE model_version = 3``
gives a version's predictions and their inputs.

``reproduce`` rebuilds a version's training set at its recorded cutoff inside a transaction it
rolls back, refits the version's stored recipe on the rows its training run fitted (those
before the recorded holdout; the seed it recorded), converts, and compares the ONNX sha256
with the stored one. Nothing is registered or kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from indb import registry
from indb.backends.base import Backend
from indb.errors import IndbError
from indb.sql import statement

NO_VERSION = -1  # how edges_from asks for a node without a version (a deployment, a source)


class LineageError(IndbError, ValueError):
    """A version lineage cannot reproduce: the message says what is missing."""


# -- the tree ---------------------------------------------------------------------------------
def _node(kind: str, name: Any, version: Any) -> dict:
    version = None if version is None or pd.isna(version) else int(version)
    return {"kind": kind, "name": name, "version": version}


def _upstream(backend: Backend, kind: str, name: str, version: int | None, seen: set) -> list[dict]:
    key = (kind, name, version)
    if key in seen:
        return []
    seen.add(key)
    rows = backend.rows(
        statement("lineage", "edges_from", backend.dialect),
        {"kind": kind, "name": name, "version": NO_VERSION if version is None else version},
    )
    edges = []
    for relation, to_kind, to_name, to_version, detail in rows:
        node = _node(to_kind, to_name, to_version)
        # a parent version is named, not expanded: its own lineage is one more call away; the
        # version an import was exported as lives in another database
        stop = relation in ("parent", "imported_from")
        below = [] if stop else _upstream(backend, to_kind, to_name, node["version"], seen)
        edges.append({"relation": relation, **node, "detail": detail, "upstream": below})
    return edges


def _downstream(backend: Backend, model: str, version: int) -> list[dict]:
    rows = backend.rows(
        statement("lineage", "edges_to", backend.dialect), {"name": model, "version": version}
    )
    relation_of = {"parent": "retrained_into"}  # read from the parent's side
    return [
        {"relation": relation_of.get(relation, relation), **_node(kind, name, number), "detail": detail}
        for relation, kind, name, number, detail in rows
    ]


def tree(backend: Backend, model: str, version: int | str | None = None) -> dict:
    """One version's lineage: ``{"kind": "model", "name", "version", "upstream": [...],
    "downstream": [...]}``; every edge has relation, kind, name, version and detail."""
    number = registry.get(backend, model, version, with_bytes=False).version  # must exist
    return {
        **_node("model", model, number),
        "upstream": _upstream(backend, "model", model, number, set()),
        "downstream": _downstream(backend, model, number),
    }


def _label(edge: dict) -> str:
    at = "" if edge["version"] is None else f"@{edge['version']}"
    if edge["kind"] == "training_run":
        at = f" #{edge['version']}"
    return f"{edge['kind']} {edge['name']}{at}"


def render(lineage: dict) -> str:
    """The tree as indented text."""
    lines = [_label(lineage)]

    def walk(edges: list[dict], depth: int) -> None:
        for edge in edges:
            detail = f"  ({edge['detail']})" if edge.get("detail") else ""
            lines.append(f"{'  ' * depth}{edge['relation']} -> {_label(edge)}{detail}")
            walk(edge.get("upstream", []), depth + 1)

    for side in ("upstream", "downstream"):
        lines.append(f"  {side}:")
        if lineage[side]:
            walk(lineage[side], 2)
        else:
            lines.append("    (none)")
    return "\n".join(lines)


# -- reproduce --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` found: whether the refit's ONNX sha256 matches and, if not, which
    input changed: ``data`` (the rebuilt training set's content hash differs), ``recipe`` (the
    rebuilt estimator's parameters differ from the stored recipe) or ``environment`` (same data
    and recipe: library versions or nondeterminism)."""

    model: str
    version: int
    matches: bool
    changed: str | None
    reason: str
    sha256: str
    stored_sha256: str
    training_set: str
    training_set_version: int
    cutoff: datetime | None
    content_hash: str
    stored_content_hash: str | None
    rows: int
    fit_rows: int
    training_run: int | None

    def to_dict(self) -> dict:
        return asdict(self)


class _Undo(Exception):
    """Raised to roll back the rebuilt training set."""


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _time(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _recorded(backend: Backend, model: str, version: int) -> dict:
    """The training set, cutoff, content hash, holdout and seed the version was made with."""
    found = backend.query(
        statement("lineage", "run_of_version", backend.dialect), {"model": model, "version": version}
    )
    if not found.empty and found.iloc[0]["training_set_version"] is not None:
        run = found.iloc[0]
        recipe, holdout = _loads(run["recipe"]) or {}, _loads(run["holdout"]) or {}
        return {
            "training_set": run["training_set"],
            "training_set_version": int(run["training_set_version"]),
            "cutoff": _time(run["cutoff"]),
            "content_hash": run["content_hash"],
            "holdout": holdout.get("definition"),
            "seed": recipe.get("seed"),
            "recipe": recipe.get("estimator"),
            "training_run": int(run["id"]),
        }
    found = backend.query(
        statement("lineage", "training_set_of_version", backend.dialect), {"model": model, "version": version}
    )
    if found.empty:
        from indb.governance import files

        notes = files.imported_notes(backend, model, version)
        if notes:
            raise LineageError(notes[0] + "; no training run or training set is recorded for it here")
        raise LineageError(
            f"{model} version {version} has no recorded training set (no training run and no "
            f"register_model(..., training_set=)): there is nothing to rebuild it from"
        )
    row = found.iloc[0]
    return {
        "training_set": row["training_set"],
        "training_set_version": int(row["training_set_version"]),
        "cutoff": _time(row["cutoff"]),
        "content_hash": row["content_hash"],
        "holdout": None,  # registered by hand: fitted on the whole training set, as far as indb knows
        "seed": None,
        "recipe": None,
        "training_run": None,
    }


def _rebuilt_rows(
    backend: Backend, name: str, version: int, cutoff: datetime | None
) -> tuple[pd.DataFrame, str]:
    """The training set version rebuilt at ``cutoff`` (its rows and content hash), then rolled
    back: no new training set version stays."""
    from indb.feature_store import training as training_sets

    kept: dict = {}
    try:
        with backend.transaction():
            built = training_sets.rebuild(backend, name, version, cutoff=cutoff)
            kept["rows"], kept["hash"] = built.df(), built.content_hash
            raise _Undo
    except _Undo:
        pass
    return kept["rows"], kept["hash"]


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def reproduce(backend: Backend, model: str, version: int | str | None = None) -> Reproduction:
    """Rebuild, refit, convert and compare (see the module docstring)."""
    from indb.lifecycle import retraining, training
    from indb.lifecycle.training import Holdout

    stored = registry.get(backend, model, version)
    recorded = _recorded(backend, stored.name, stored.version)
    if not (stored.recipe or {}).get("estimator"):
        raise LineageError(f"{stored.name} version {stored.version} has no estimator recipe to refit")
    definition = retraining._stored(backend, recorded["training_set"], recorded["training_set_version"])[
        "definition"
    ]
    event_time = definition["event_time"]
    label = stored.recipe.get("label") or definition["label"]
    frame, content_hash = _rebuilt_rows(
        backend, recorded["training_set"], recorded["training_set_version"], recorded["cutoff"]
    )
    rows = training.ordered(frame, event_time, label)
    fit_rows = rows
    if recorded["holdout"]:
        fit_rows, _, _ = Holdout.parse(recorded["holdout"]).split(rows, event_time)
    features = list(stored.recipe.get("features") or stored.signature.columns)
    estimator = training.seeded(retraining.registry_rebuild(stored.recipe), recorded["seed"])
    estimator.fit(fit_rows[features], fit_rows[label])
    data, _, refit_recipe, _ = registry.prepare(estimator, fit_rows[features])
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 == stored.sha256:
        changed, reason = None, "the refit's ONNX sha256 matches the stored one"
    elif recorded["content_hash"] is not None and content_hash != recorded["content_hash"]:
        changed = "data"
        reason = (
            f"the training data changed: training set {recorded['training_set']!r} version "
            f"{recorded['training_set_version']} rebuilt at its cutoff has content hash {content_hash}, "
            f"recorded {recorded['content_hash']} ("
            + (
                "rows under the cutoff were changed or added)"
                if recorded["cutoff"] is not None
                else "it recorded no cutoff: rows added since count too)"
            )
        )
    elif not _same(refit_recipe.get("estimator"), stored.recipe["estimator"]) or (
        recorded["recipe"] is not None and not _same(recorded["recipe"], stored.recipe["estimator"])
    ):
        changed = "recipe"
        reason = (
            "the recipe changed: the version's stored recipe differs from the one its training run "
            "fitted, or the rebuilt estimator's parameters differ from it (a library changed defaults)"
        )
    else:
        changed = "environment"
        reason = (
            "same training data and recipe, different ONNX: library versions (scikit-learn, "
            "skl2onnx, onnx) or a nondeterministic fit (a random_state left unset)"
        )
    return Reproduction(
        stored.name,
        stored.version,
        changed is None,
        changed,
        reason,
        sha256,
        stored.sha256,
        recorded["training_set"],
        recorded["training_set_version"],
        recorded["cutoff"],
        content_hash,
        recorded["content_hash"],
        len(rows),
        len(fit_rows),
        recorded["training_run"],
    )

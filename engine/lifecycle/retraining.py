"""Retraining policies (``indb.retraining_policies``) and ``retrain``: the closed loop's fit.

``retrain(model)`` rebuilds the policy's training set with cutoff = now (a new version, with
lineage), rebuilds the champion's estimator from its stored recipe (or takes the one given),
fits it on the rows before the time-based holdout, registers the result as a new version and
scores the champion, the candidate and the model's other versions on the same holdout rows;
everything goes to ``indb.training_runs``. Lineage of the new version: its training set (name,
version) in ``indb.model_training_sets`` (``indb.model_lineage``) and its recipe, and tags
``parent_version``, ``training_run``, ``training_set``, ``training_set_version``; the run row
holds ``version`` and ``parent_version`` too.

Then ``promote``: ``manual`` does nothing more; ``approval`` opens a stage request to
production for the new version (carrying the policy's deployment, if any: the approval that
completes the model's stage policy switches it) and notes ``{"promotion": "requested",
"stage_request": ...}`` on the run; ``auto`` adds the new version, when it beats the
champion on the holdout and no earlier version still shadows there, as a shadow challenger of
the policy's deployment (indb.lifecycle.challengers), whose comparison decides promotion.

A fit that fails (the recipe cannot fit the rows, a holdout without rows, ...) is recorded as
``failed`` with its error, and nothing else changes: no version, no deployment switch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlglot import exp

from indb import audit, identifiers, registry
from indb.backends.base import Backend
from indb.errors import IndbError, NotFoundError
from indb.lifecycle import metrics, training
from indb.lifecycle.training import Holdout, TrainingError
from indb.sql import statement

PROMOTE = ("manual", "approval", "auto")
OTHER_VERSIONS = 20  # older versions scored on each holdout too (the leaderboard's rows)


@dataclass(frozen=True)
class Policy:
    """How a model is retrained (a row of ``indb.retraining_policies``)."""

    model: str
    training_set: str
    holdout: str
    metric: str
    min_new_labels: int = 0
    promote: str = "manual"
    min_improvement: float = 0.0
    min_labels: int = 100
    confidence: float = 0.95
    deployment: str | None = None
    job: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class TrainingRun:
    """What ``retrain`` did: the run's id and status, the version it registered and the metrics."""

    id: int
    model: str
    status: str
    version: int | None = None
    parent_version: int | None = None
    training_set: str | None = None
    training_set_version: int | None = None
    metrics: dict | None = None
    champion_metrics: dict | None = None
    notes: dict | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _whole(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainingError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise TrainingError(f"{name} must be a number >= {low:g}, got {value!r}")
    if high is not None and value >= high:
        raise TrainingError(f"{name} must be below {high:g}, got {value!r}")
    return float(value)


def job_name(model: str) -> str:
    return f"retrain_{model}"[: identifiers.MAX_NAME]


def create(
    backend: Backend,
    model: str,
    *,
    training_set: str,
    holdout: str = "20%",
    metric: str,
    schedule: str | None = None,
    on_alert: dict | None = None,
    min_new_labels: int = 0,
    promote: str = "manual",
    min_improvement: float = 0.0,
    min_labels: int = 100,
    confidence: float = 0.95,
    deployment: str | None = None,
) -> Policy:
    """Check and store a policy; with ``schedule``/``on_alert`` also a ``retrain`` job."""
    from indb import deployments
    from indb.feature_store import training as training_sets

    model = identifiers.model_name(model)
    champion = registry.get(backend, model, None, with_bytes=False)  # the model must exist
    name, _ = training_sets.resolve(backend, training_set)
    Holdout.parse(holdout)
    metric = metrics.metric_name(metric, champion.task)
    if on_alert is not None and isinstance(on_alert, dict) and isinstance(on_alert.get("monitor"), str):
        from indb.monitoring import monitors

        monitors.get(backend, on_alert["monitor"])  # as PostgreSQL's indb.schedule checks
    if promote not in PROMOTE:
        raise TrainingError(f"promote must be one of {', '.join(PROMOTE)}, got {promote!r}")
    if deployment is not None:
        found = deployments.get(backend, deployment)
        if found.model != model:
            raise TrainingError(f"deployment {deployment!r} serves model {found.model!r}, not {model!r}")
    elif promote == "auto":
        raise TrainingError("promote='auto' adds the new version as a shadow challenger: give deployment=")
    policy = Policy(
        model,
        name,
        Holdout.parse(holdout).text,
        metric,
        _whole("min_new_labels", min_new_labels),
        promote,
        _number("min_improvement", min_improvement, 0.0),
        _whole("min_labels", min_labels),
        _number("confidence", confidence, 1e-9, 1.0),
        deployment,
        job_name(model) if schedule is not None or on_alert is not None else None,
        backend.user,
        training.utcnow(),
    )
    if backend.rows(statement("lifecycle", "get_policy", backend.dialect), {"model": model}):
        raise TrainingError(
            f"model {model!r} has a retraining policy already; db.drop_retraining({model!r}) first"
        )
    if policy.job is not None:
        from indb.jobs import api

        api.schedule(
            backend,
            api.JobSpec(
                policy.job,
                schedule,
                "retrain",
                {"model": model},
                on_alert=on_alert,
                comment=f"retrain model {model} (indb.retraining_policies)",
            ),
        )
    with backend.transaction():
        backend.execute(statement("lifecycle", "insert_policy", backend.dialect), asdict(policy))
        audit.record(
            backend,
            "create_retraining",
            model,
            {k: v for k, v in asdict(policy).items() if k != "created_at"},
        )
    return policy


def get(backend: Backend, model: str) -> Policy:
    model = identifiers.model_name(model)
    found = backend.rows(statement("lifecycle", "get_policy", backend.dialect), {"model": model})
    if not found:
        known = [r[0] for r in backend.rows(statement("lifecycle", "policy_names", backend.dialect))]
        raise NotFoundError("retraining policy of model", model, known)
    row = list(found[0])
    row[4], row[7] = int(row[4]), int(row[7])
    return Policy(*row)


def drop(backend: Backend, model: str) -> None:
    """Remove a model's policy and its job (its training runs stay)."""
    policy = get(backend, model)
    if policy.job is not None:
        from indb.jobs import api

        try:
            api.unschedule(backend, policy.job)
        except NotFoundError:
            pass  # removed by hand already
    with backend.transaction():
        backend.execute(statement("lifecycle", "delete_policy", backend.dialect), {"model": policy.model})
        audit.record(backend, "drop_retraining", policy.model, {})


# -- retrain ----------------------------------------------------------------------------------
def _champion(backend: Backend, policy: Policy):
    """The deployed version of the policy's deployment, else production, else the default."""
    if policy.deployment is not None:
        found = backend.rows(
            statement("lifecycle", "deployment_version", backend.dialect), {"table_name": policy.deployment}
        )
        if found:
            return registry.get(backend, policy.model, int(found[0][1]))
    return registry.get(backend, policy.model, None)


def _recipe(given: Any, champion) -> dict:
    from indb.recipe import recipe as make_recipe

    if given is None:
        return dict(champion.recipe)
    if isinstance(given, dict):
        if not given.get("estimator"):
            raise TrainingError("a recipe is a dict with an 'estimator' (see indb.recipe.to_json)")
        return {"features": champion.recipe.get("features"), **given}
    if hasattr(given, "get_params") and hasattr(given, "fit"):
        return make_recipe(given, list(champion.recipe.get("features") or champion.signature.columns))
    raise TrainingError(
        f"recipe must be a recipe dict or an unfitted scikit-learn estimator, got {type(given).__name__}"
    )


def _labeled_spine_rows(backend: Backend, name: str, version: int, cutoff: datetime) -> int:
    """Labeled rows the training set's stored spine has up to ``cutoff`` (what a rebuild takes)."""
    from indb.feature_store import pit, times
    from indb.feature_store.sets import Source

    definition = _stored(backend, name, version)["definition"]
    spine = definition["spine"].get("table") or definition["spine"]["query"]
    with Source(backend, spine, "spine", spine=True) as src:
        event_time, label = definition["event_time"], definition["label"]
        query = (
            exp.select(exp.Count(this=exp.Star()))
            .from_(
                exp.Subquery(this=exp.select(exp.Star()).from_(src.tree.copy()), alias=exp.to_identifier("s"))
            )
            .where(exp.LTE(this=pit.column(event_time), expression=exp.Placeholder(this="cutoff")))
        )
        if label:
            query = query.where(exp.Not(this=exp.Is(this=pit.column(label), expression=exp.Null())))
        cutoff = times.python_value(cutoff, src.columns[event_time])
        ((count,),) = backend.rows(query.sql(backend.dialect), {"cutoff": cutoff})
    return int(count)


def _new_labels(backend: Backend, policy: Policy, cutoff: datetime) -> tuple[int, int]:
    """(labeled spine rows now, rows of the training set version the last successful run used
    (or, before any run, the latest version: what the champion was trained on))."""
    from indb.feature_store import training as training_sets

    found = backend.rows(statement("lifecycle", "last_success", backend.dialect), {"model": policy.model})
    if found and found[0][0] == policy.training_set:
        previous = int(found[0][1])
    else:
        _, previous = training_sets.resolve(backend, policy.training_set)
    before = _stored(backend, policy.training_set, previous)["row_count"]
    return _labeled_spine_rows(backend, policy.training_set, previous, cutoff), int(before)


def _other_versions(backend: Backend, model: str, skip: set[int]) -> list:
    """The model's latest OTHER_VERSIONS versions besides the candidate and the champion."""
    numbers = [v.version for v in registry.versions(backend, model) if v.version not in skip]
    return [registry.get(backend, model, n) for n in numbers[-OTHER_VERSIONS:]]


def retrain(
    backend: Backend,
    model: str,
    *,
    recipe: Any = None,
    triggered_by: str | None = None,
    seed: int | None = None,
    now: datetime | None = None,
    job_run_id: int | None = None,
    max_rows: int | None = None,
) -> TrainingRun:
    """Run a model's retraining policy now (see the module docstring). ``max_rows`` caps the
    rebuilt training set: more rows fail the run before anything is read into memory (where
    fitting runs inside the database server, its memory is the server's)."""
    policy = get(backend, model)
    if max_rows is not None:
        _whole("max_rows", max_rows, 1)
    champion = _champion(backend, policy)
    recipe_json = _recipe(recipe, champion)
    # a recipe that names what may not be rebuilt, or a bad seed, is refused before a run exists
    training.seeded(registry_rebuild(recipe_json), seed)
    cutoff = now or training.utcnow()
    triggered_by = triggered_by or f"user:{backend.user}"
    run_id = training.start(
        backend,
        policy.model,
        parent_version=champion.version,
        recipe=recipe_json,
        training_set=policy.training_set,
        triggered_by=triggered_by,
        job_run_id=job_run_id,
        started_at=training.utcnow(),
    )
    base = {"parent_version": champion.version, "recipe": recipe_json, "training_set": policy.training_set}
    if policy.min_new_labels:
        try:
            available, used = _new_labels(backend, policy, cutoff)
        except Exception as e:
            return _failed(backend, run_id, policy, base, e)
        if available - used < policy.min_new_labels:
            reason = (
                f"{max(available - used, 0)} new labeled rows since training set "
                f"{policy.training_set!r} was last used ({used} rows then, {available} now); "
                f"the policy needs {policy.min_new_labels}"
            )
            notes = {"skipped": reason, "new_labels": available - used}
            training.finish(backend, run_id, status="skipped", notes=notes, **base)
            return TrainingRun(run_id, policy.model, "skipped", parent_version=champion.version, notes=notes)
    try:
        return _fit_and_register(backend, policy, champion, recipe_json, seed, cutoff, run_id, base, max_rows)
    except Exception as e:
        return _failed(backend, run_id, policy, base, e)


def registry_rebuild(recipe_json: dict):
    from indb.recipe import rebuild

    return rebuild(recipe_json)


def _failed(backend: Backend, run_id: int, policy: Policy, base: dict, error: Exception) -> TrainingRun:
    error = backend.translate(error) if not isinstance(error, IndbError) else error
    message = f"{type(error).__name__}: {error}"
    training.finish(backend, run_id, status="failed", error=message, **{**base, **getattr(error, "_run", {})})
    return TrainingRun(run_id, policy.model, "failed", parent_version=base["parent_version"], error=message)


def _fit_and_register(
    backend, policy, champion, recipe_json, seed, cutoff, run_id, base, max_rows=None
) -> TrainingRun:
    from indb.feature_store import training as training_sets

    built = training_sets.rebuild(backend, policy.training_set, cutoff=cutoff)
    definition = _stored(backend, built.name, built.version)["definition"]
    event_time, label = definition["event_time"], definition["label"]
    if not label:
        raise TrainingError(f"training set {built.name!r} has no label column to train on")
    features = list(recipe_json.get("features") or champion.signature.columns)
    missing = [c for c in features if c not in built.columns]
    if missing:
        raise TrainingError(
            f"the recipe's features {', '.join(missing)} are not columns of training set "
            f"{built.name!r} (it has {', '.join(built.columns)})"
        )
    if max_rows is not None and built.row_count > max_rows:
        error = TrainingError(
            f"training set {built.name!r} version {built.version} has {built.row_count} rows, over "
            f"the cap of {max_rows} (max_rows); raise it or narrow the spine"
        )
        error._run = {"training_set_version": built.version, "cutoff": cutoff, "rows": built.row_count}
        raise error
    rows = training.ordered(built.df(), event_time, label)
    fit_rows, holdout_rows, holdout = Holdout.parse(policy.holdout).split(rows, event_time)
    progress = {
        "training_set_version": built.version,
        "cutoff": cutoff,
        "rows": int(built.row_count),
        "content_hash": built.content_hash,
        "holdout": holdout,
    }
    estimator = training.seeded(registry_rebuild(recipe_json), seed)
    if seed is not None:
        from indb.recipe import to_json

        recipe_json = {**recipe_json, "estimator": to_json(estimator), "seed": seed}
        base = {**base, "recipe": recipe_json}
    started = time.perf_counter()
    try:
        estimator.fit(fit_rows[features], fit_rows[label])
    except Exception as e:
        error = TrainingError(f"fitting {type(estimator).__name__} on {len(fit_rows)} rows failed: {e}")
        error._run = progress
        raise error from None
    fit_seconds = time.perf_counter() - started
    tags = {
        "training_run": run_id,
        "parent_version": champion.version,
        "training_set": built.name,
        "training_set_version": built.version,
    }
    try:
        candidate = registry.register(
            backend,
            policy.model,
            estimator,
            sample=fit_rows[features],
            tags=tags,
            training_set=(built.name, built.version),
        )
    except Exception as e:
        e._run = progress
        raise
    candidate = registry.get(backend, policy.model, candidate.version)
    scored = {candidate.version: ("candidate", training.evaluate(candidate, holdout_rows, label))}
    try:
        scored[champion.version] = ("champion", training.evaluate(champion, holdout_rows, label))
    except TrainingError:
        pass  # a champion with other inputs cannot be scored on this training set
    for other in _other_versions(backend, policy.model, set(scored)):
        try:
            scored[other.version] = ("other", training.evaluate(other, holdout_rows, label))
        except TrainingError:
            continue
    new_metrics = scored[candidate.version][1]
    champion_metrics = scored.get(champion.version, (None, None))[1]
    notes = _promote(backend, policy, candidate.version, new_metrics, champion_metrics)
    with backend.transaction():
        training.record_metrics(backend, run_id, policy.model, scored)
        training.finish(
            backend,
            run_id,
            status="succeeded",
            version=candidate.version,
            metrics=new_metrics,
            champion_metrics=champion_metrics,
            fit_seconds=fit_seconds,
            notes=notes,
            **base,
            **progress,
        )
    return TrainingRun(
        run_id,
        policy.model,
        "succeeded",
        version=candidate.version,
        parent_version=champion.version,
        training_set=built.name,
        training_set_version=built.version,
        metrics=new_metrics,
        champion_metrics=champion_metrics,
        notes=notes,
    )


def _stored(backend: Backend, name: str, version: int) -> dict:
    """A training set version's catalog row, its definition parsed."""
    row = backend.query(
        statement("feature_store", "get_training_set", backend.dialect), {"name": name, "version": version}
    ).iloc[0]
    definition = row["definition"]
    return {
        **row.to_dict(),
        "definition": json.loads(definition) if isinstance(definition, str) else definition,
    }


def _promote(backend, policy: Policy, version: int, new: dict, champion: dict | None) -> dict | None:
    """What happens after a successful fit, as the policy says; the run's notes."""
    beats = metrics.better(
        policy.metric,
        new.get(policy.metric),
        None if champion is None else champion.get(policy.metric),
        policy.min_improvement,
    )
    if policy.promote == "manual":
        return {"promotion": "manual", "beats_champion": beats}
    if policy.promote == "approval":
        return {
            "promotion": "requested",
            "beats_champion": beats,
            **_request(backend, policy, version, new, champion),
        }
    if not beats:
        return {"promotion": "auto", "beats_champion": False, "challenger": None}
    return {"promotion": "auto", "beats_champion": True, **_add_challenger(backend, policy, version)}


def _request(backend, policy: Policy, version: int, new: dict, champion: dict | None) -> dict:
    """promote='approval': a stage request to production for the new version (the one approval
    flow, indb.governance.stages), for the policy's deployment when it has one (then also a row
    of indb.promotion_requests, and the approval that completes it switches the deployment).
    A request that cannot be opened (the job's role may not request) is noted, not raised: the
    version stays registered."""
    from indb.governance import stages
    from indb.lifecycle import promotion

    def shown(found):
        value = None if found is None else found.get(policy.metric)
        return "none" if value is None else f"{value:.4g}"

    reason = (
        f"approval: retrained version {version}: {policy.metric} {shown(new)} on the holdout "
        f"vs champion {shown(champion)}"
    )
    evidence = {"metric": policy.metric, "candidate": new, "champion": champion}
    try:
        if policy.deployment is None:
            with backend.transaction():  # a subtransaction inside the server: a refusal rolls back alone
                found = stages.request_promotion(
                    backend, policy.model, version, "production", reason, evidence=evidence
                )
            return {"stage_request": found}
        found = promotion.request(backend, policy.deployment, version, reason=reason, evidence=evidence)
        ((stage_request,),) = backend.rows(
            statement("promotion", "request_stage_request", backend.dialect), {"request": found}
        )
        return {"promotion_request": found, "stage_request": int(stage_request)}
    except IndbError as e:
        return {"request_error": f"{type(e).__name__}: {e}"}


def _add_challenger(backend, policy: Policy, version: int) -> dict:
    """Shadow the new version on the policy's deployment, unless an earlier version of the
    model is still shadowing there: its evidence is still gathering (labels arrive late), and
    the comparison (evaluate_challengers) promotes or retires it; one candidate at a time."""
    from indb.lifecycle import challengers

    pending = [
        c.version
        for c in challengers.listed(backend, policy.deployment)
        if c.mode == "shadow" and c.model == policy.model
    ]
    if pending:
        return {"challenger": None, "waiting_for": pending}
    try:
        challengers.add(backend, policy.deployment, version, mode="shadow")
    except Exception as e:
        return {"challenger": None, "challenger_error": f"{type(e).__name__}: {backend.translate(e)}"}
    return {"challenger": {"deployment": policy.deployment, "version": version, "mode": "shadow"}}

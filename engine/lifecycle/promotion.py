"""Promotion and rollback of a deployment's champion, and the policy that decides them.

``promote(table, version)`` and ``rollback(table, to=None)`` are the deployment's ordinary
switch (:func:`indb.deployments.deploy` with a version: on PostgreSQL it takes the
deployment's lock exclusively, so inserts under way finish with the old version and later
ones wait and score with the new one; every row is scored by exactly one version), and in the
same transaction: the promoted version leaves ``indb.challengers``, a row goes to
``indb.deployment_history`` with the reason and the evidence (the stored comparison rows),
open promotion requests for it are marked done, and the audit log records it.

``evaluate(table)`` compares (:mod:`indb.lifecycle.comparison`), stores the comparison and
applies the model's retraining policy (``indb.retraining_policies``; without one, or for
fields given as arguments, the defaults below): ``auto`` promotes the challenger whose
verdict on the policy's metric is ``better`` and whose improvement is at least
``min_improvement`` at the lower end of its confidence interval, on at least ``min_labels``
labeled rows; ``approval`` opens a promotion request (``indb.promotion_requests``) decided by a
stage request to production carrying the deployment (:mod:`indb.governance.stages`: the
approval that completes the model's stage policy switches it, or ``promote`` does);
``manual`` only reports. Under ``auto`` a challenger the comparison
settled against also leaves (retired, audited): ``worse`` on at least ``min_labels`` labeled
rows, or ``no difference`` on at least ``RETIRE_AFTER`` times that many, so that the
retraining policy, which shadows one new version at a time, can try the next.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import numpy as np
import pandas as pd

from indb import audit, deployments, registry
from indb.backends.base import Backend
from indb.errors import DeploymentError, IndbError
from indb.governance import stages
from indb.lifecycle import comparison, significance
from indb.lifecycle.comparison import DeploymentInfo, Settings
from indb.sql import statement

PROMOTE = ("manual", "approval", "auto")
RETIRE_AFTER = 10  # x min_labels: a challenger with no difference by then leaves (auto)
# indb.lifecycle.metrics' names, and the aliases it accepts
METRIC_NAMES = {
    **{name: name for name in ("accuracy", "roc_auc", "log_loss", "f1", "mae", "rmse", "r2")},
    **{"auc": "roc_auc", "logloss": "log_loss", "f1_score": "f1", "rsquared": "r2"},
}


@dataclass(frozen=True)
class Policy:
    promote: str = "manual"
    metric: str | None = None  # None: accuracy for classifiers, mae for regressors
    min_improvement: float = 0.0
    min_labels: int = 100
    confidence: float = 0.95
    source: str = "defaults"
    note: str = ""


@dataclass
class Switch:
    """A promotion or rollback: what it switched, why, and the statements of the switch."""

    action: str
    table: str
    model: str
    from_version: int
    to_version: int
    reason: str
    evidence: object
    statements: list[str] = field(default_factory=list, repr=False)
    dry_run: bool = False


@dataclass
class Evaluation:
    """One ``evaluate_challengers``: the stored comparison, the policy and what it led to."""

    table: str
    evaluation_id: int | None
    policy: Policy
    decision: str  # 'promoted' | 'requested' | 'reported' | 'no challenger better'
    version: int | None
    request_id: int | None
    switch: Switch | None
    comparison: comparison.Comparison = field(repr=False)
    candidates: list[dict] = field(default_factory=list)
    dry_run: bool = False
    retired: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "deployment": self.table,
            "dry_run": self.dry_run,
            "evaluation_id": self.evaluation_id,
            "policy": self.policy.__dict__,
            "decision": self.decision,
            "version": self.version,
            "request_id": self.request_id,
            "candidates": self.candidates,
            "retired": self.retired,
        }


def _jsonable(value):
    if value is None or value is pd.NaT or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, default=_jsonable)


def _clean(rows: list[dict]) -> list[dict]:
    return [{k: _jsonable(v) for k, v in row.items()} for row in rows]


# -- switching ------------------------------------------------------------------------------
def _features_from(features: str | dict | None) -> list[str] | None:
    """The feature sets a features_from deployment was made with, to switch it alike."""
    if features is None:
        return None
    info = json.loads(features) if isinstance(features, str) else features
    return [f"{name}@{version}" for name, version in info["feature_sets"]]


def _record_current(backend: Backend, dep: DeploymentInfo) -> None:
    """History starts with the champion the switch replaces, when no row records it yet
    (deployed before deployment_history existed, or by a deploy that does not write it)."""
    history = backend.rows(statement("promotion", "history", backend.dialect), {"deployment": dep.table})
    if history and (history[0][1], int(history[0][2])) == (dep.model, dep.version):
        return
    backend.execute(
        statement("promotion", "record_champion", backend.dialect),
        {
            "deployment": dep.table,
            "switched_by": backend.user,
            "reason": "deployed (recorded at a later switch)",
            "evidence": None,
        },
    )


def _switch(
    backend: Backend,
    dep: DeploymentInfo,
    version: int,
    *,
    action: str,
    reason: str,
    evidence,
    runtime: str,
    dry_run: bool,
) -> Switch:
    features_from = _features_from(dep.features)
    run = dict(table=dep.table, version=version, runtime=runtime, mode=dep.mode, features_from=features_from)
    result = Switch(action, dep.table, dep.model, dep.version, version, reason, evidence, dry_run=dry_run)
    if dry_run:
        plan = deployments.deploy(backend, dep.model, **run, dry_run=True)
        result.statements = [
            *plan.statements,
            f"-- then: indb.deployment_history gets version {version} ({action}: {reason}); "
            f"indb.challengers loses it; open promotion requests for it are done; audit '{action}'",
        ]
        return result
    why = f"{action}: {reason}"

    def switch():  # run again by Backend.retrying if DuckDB refuses it while a db.insert is under way
        with backend.transaction():
            _record_current(backend, dep)
            # deploy writes the history row (reason, evidence) and drops the new champion from
            # the challengers, in this transaction
            deployed = deployments.deploy(backend, dep.model, **run, reason=why, evidence=_json(evidence))
            backend.execute(
                statement("promotion", "complete_requests", backend.dialect),
                {"deployment": dep.table, "version": version, "decided_by": backend.user},
            )
            stages.complete_requests(backend, dep.table)
            audit.record(
                backend,
                action,
                dep.table,
                {
                    "model": dep.model,
                    "from_version": dep.version,
                    "to_version": version,
                    "runtime": deployed.runtime,
                    "reason": reason,
                    "evidence": evidence,
                },
            )
        return deployed

    result.statements = backend.retrying(dep.table, switch).statements
    return result


def _version(backend: Backend, dep: DeploymentInfo, version) -> int:
    if version is None or isinstance(version, bool) or not isinstance(version, int | str):
        raise DeploymentError(
            f"give the version to switch {dep.table!r} to (a number or an alias), got {version!r}"
        )
    number = registry.resolve(backend, dep.model, version)
    registry.get(backend, dep.model, number, with_bytes=False)  # NotFoundError naming the versions
    return number


def evidence_for(backend: Backend, table: str, version: int) -> list[dict]:
    """The newest stored comparison rows of ``version`` over all labeled rows (every metric)."""
    frame = backend.query(
        statement("comparison", "evidence_rows", backend.dialect), {"deployment": table, "version": version}
    )
    return _clean(frame.to_dict("records"))


def promote(
    backend: Backend,
    table: str,
    version: int | str,
    *,
    reason: str | None = None,
    evidence=None,
    runtime: str = "auto",
    dry_run: bool = False,
) -> Switch:
    """Make ``version`` the champion of the deployment on ``table``, atomically."""
    dep = comparison.deployment_info(backend, table)
    number = _version(backend, dep, version)
    if number == dep.version:
        raise DeploymentError(f"version {number} of {dep.model!r} is already the champion of {dep.table!r}")
    if reason is not None and not isinstance(reason, str):
        raise DeploymentError(f"reason must be text, got {reason!r}")
    if evidence is None:
        evidence = evidence_for(backend, dep.table, number) or None
    return _switch(
        backend,
        dep,
        number,
        action="promote",
        reason=reason or "promoted by hand",
        evidence=evidence,
        runtime=runtime,
        dry_run=dry_run,
    )


def rollback(
    backend: Backend,
    table: str,
    *,
    to: int | str | None = None,
    reason: str | None = None,
    runtime: str = "auto",
    dry_run: bool = False,
) -> Switch:
    """Back to the previous champion (or ``to``, a version that was champion before)."""
    dep = comparison.deployment_info(backend, table)
    history = backend.rows(statement("promotion", "history", backend.dialect), {"deployment": dep.table})
    earlier = [h for h in history if h[1] == dep.model and int(h[2]) != dep.version]
    if to is None:
        if not earlier:
            raise DeploymentError(
                f"deployment {dep.table!r} has no earlier champion in indb.deployment_history (only "
                f"version {dep.version} of {dep.model!r}); switch with promote instead"
            )
        target = earlier[0]
    else:
        number = _version(backend, dep, to)
        if number == dep.version:
            raise DeploymentError(
                f"version {number} of {dep.model!r} is already the champion of {dep.table!r}"
            )
        found = [h for h in earlier if int(h[2]) == number]
        if not found:
            champions = sorted({int(h[2]) for h in history if h[1] == dep.model})
            raise DeploymentError(
                f"version {number} of {dep.model!r} was never the champion of {dep.table!r} "
                f"(champions recorded: {', '.join(map(str, champions)) or 'none'}); "
                "use promote for a new version"
            )
        target = found[0]
    evidence = {
        "from_version": dep.version,
        "champion_since": _jsonable(target[4]),
        "was_switched_by": target[5],
    }
    return _switch(
        backend,
        dep,
        int(target[2]),
        action="rollback",
        reason=reason or f"back from version {dep.version}",
        evidence=evidence,
        runtime=runtime,
        dry_run=dry_run,
    )


# -- policy ---------------------------------------------------------------------------------
def _policy_row(backend: Backend, dep: DeploymentInfo) -> dict | None:
    """The model's retraining policy for this deployment (indb.retraining_policies, 014)."""
    if not comparison.has_catalog_table(backend, "retraining_policies"):
        return None
    frame = backend.query(statement("comparison", "retraining_policy", backend.dialect), {"model": dep.model})
    rows = frame.to_dict("records")

    def covers(row) -> bool:
        target = row.get("deployment")
        if target is None or (isinstance(target, float) and math.isnan(target)):
            return True
        if isinstance(target, str) and target.startswith("["):
            target = json.loads(target)
        return dep.table in target if isinstance(target, list) else target == dep.table

    chosen = [r for r in rows if covers(r)]
    return chosen[-1] if chosen else None


def policy_for(backend: Backend, dep: DeploymentInfo, overrides: dict) -> Policy:
    found = _policy_row(backend, dep)
    policy = Policy()
    if found is not None:
        values = {
            k: found[k]
            for k in ("promote", "metric", "min_improvement", "min_labels", "confidence")
            if k in found
            and found[k] is not None
            and not (isinstance(found[k], float) and math.isnan(found[k]))
        }
        policy = replace(policy, **values, source="indb.retraining_policies")
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        policy = replace(policy, **given, source=policy.source + " + arguments")
    if policy.promote not in PROMOTE:
        raise IndbError(f"promote must be one of {', '.join(PROMOTE)}, got {policy.promote!r}")

    def number(key: str, kind):
        value = getattr(policy, key)
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise IndbError(f"{key} must be a number, got {value!r}")
        return kind(value)

    policy = replace(
        policy,
        min_improvement=number("min_improvement", float),
        # a policy may say 0 labeled rows; a verdict needs at least one
        min_labels=max(1, number("min_labels", int)),
        confidence=number("confidence", float),
    )
    if not (math.isfinite(policy.min_improvement) and policy.min_improvement >= 0):
        raise IndbError(f"min_improvement must be a number >= 0, got {policy.min_improvement!r}")
    if policy.metric is not None:
        wanted = METRIC_NAMES.get(str(policy.metric).lower())
        if wanted is None:
            if "metric" in given:
                raise IndbError(
                    f"metric {policy.metric!r} is not compared; use one of "
                    + ", ".join(sorted(set(METRIC_NAMES.values())))
                )
            policy = replace(
                policy, metric=None, note=f"the policy's metric {policy.metric!r} is not compared"
            )
        else:
            policy = replace(policy, metric=wanted)
    return policy


def evaluate(
    backend: Backend,
    table: str,
    *,
    promote: str | None = None,
    metric: str | None = None,
    min_improvement: float | None = None,
    min_labels: int | None = None,
    confidence: float | None = None,
    windows: tuple[str, ...] | list[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    dry_run: bool = False,
) -> Evaluation:
    """Compare, store the comparison, and act on the policy (see the module's docstring)."""
    dep = comparison.deployment_info(backend, table)
    if not dry_run and _switch_approved(backend, dep.table):
        dep = comparison.deployment_info(backend, table)
    overrides = dict(
        promote=promote,
        metric=metric,
        min_improvement=min_improvement,
        min_labels=min_labels,
        confidence=confidence,
    )
    policy = policy_for(backend, dep, overrides)
    settings = Settings(
        confidence=policy.confidence,
        min_labels=policy.min_labels,
        resamples=resamples,
        seed=seed,
        windows=tuple(windows) if windows is not None else Settings().windows,
    )
    if "all" not in settings.windows:
        settings = replace(settings, windows=("all", *settings.windows))
    result = comparison.compare(backend, dep.table, settings)
    classifier = registry.get(backend, dep.model, dep.version, with_bytes=False).classes is not None
    name = policy.metric or ("accuracy" if classifier else "mae")
    policy = replace(policy, metric=name)
    current = None
    if comparison.has_catalog_table(backend, "challengers"):
        current = {
            int(v)
            for v, _ in backend.rows(
                statement("comparison", "current_challengers", backend.dialect), {"deployment": dep.table}
            )
        }
    candidates = []
    for row in result.rows:
        if row["role"] != "challenger" or row["window_name"] != "all" or row["metric"] != name:
            continue
        if current is not None and row["version"] not in current:
            continue
        if row["verdict"] != "better":
            continue
        gain, gain_low = significance.improvement(
            name,
            significance.Difference(
                row["difference"], row["ci_low"], row["ci_high"], row["p_value"], row["method"]
            ),
        )
        if gain_low >= policy.min_improvement:
            candidates.append({**_clean([row])[0], "improvement": gain, "improvement_low": gain_low})
    candidates.sort(key=lambda r: -r["improvement"])
    best = candidates[0] if candidates else None
    settled = [
        int(row["version"])
        for row in result.rows
        if row["role"] == "challenger"
        and row["window_name"] == "all"
        and row["metric"] == name
        and (current is None or row["version"] in current)
        and (
            (row["verdict"] == "worse" and row["labeled_rows"] >= policy.min_labels)
            or (row["verdict"] == "no difference" and row["labeled_rows"] >= RETIRE_AFTER * policy.min_labels)
        )
    ]
    evaluation = Evaluation(
        dep.table, None, policy, "no challenger better", None, None, None, result, candidates
    )
    if best is not None:
        evaluation.version = int(best["version"])
        evaluation.decision = {"auto": "promoted", "approval": "requested", "manual": "reported"}[
            policy.promote
        ]
    if dry_run:  # the decision it would take; nothing stored, requested or switched
        evaluation.dry_run = True
        if best is not None and policy.promote == "auto":
            evaluation.switch = promote_best(backend, dep, best, policy, dry_run=True)
        return evaluation
    with backend.transaction():
        evaluation.evaluation_id = comparison.store(backend, result)
        if best is not None and policy.promote == "approval":
            evaluation.request_id = _request(backend, dep, best, policy)
        audit.record(backend, "evaluate_challengers", dep.table, evaluation.summary())
    if best is not None and policy.promote == "auto":
        evaluation.switch = promote_best(backend, dep, best, policy, dry_run=False)
    if policy.promote == "auto":
        evaluation.retired = _retire(backend, dep.table, settled, evaluation.evaluation_id)
    return evaluation


def _switch_approved(backend: Backend, table: str) -> list[int]:
    """A stage request for this deployment whose approvals came in from a role that may not
    deploy left its switch pending: a role that may (the job's owner) completes it first."""
    return stages.switch_approved(backend, table)


def _retire(backend: Backend, table: str, versions: list[int], evaluation_id: int | None) -> list[int]:
    """Remove challengers the comparison settled against (``auto``), each audited."""
    from indb.lifecycle import challengers

    for version in versions:
        challengers.remove(backend, table, version)
        audit.record(
            backend,
            "retire_challenger",
            table,
            {"version": version, "evaluation_id": evaluation_id, "why": "worse or no difference, settled"},
        )
    return versions


def _because(best: dict, policy: Policy) -> str:
    return (
        f"version {best['version']} ({best['mode']}) {best['metric']} {best['value']:.4g} vs champion "
        f"{best['champion_value']:.4g} on {best['labeled_rows']} labeled rows: better by "
        f"{best['improvement']:.4g} (>= {best['improvement_low']:.4g} at {policy.confidence:g} confidence; "
        f"min_improvement {policy.min_improvement:g})"
    )


def promote_best(
    backend: Backend, dep: DeploymentInfo, best: dict, policy: Policy, *, dry_run: bool
) -> Switch:
    evidence = evidence_for(backend, dep.table, int(best["version"])) if not dry_run else [best]
    return _switch(
        backend,
        dep,
        int(best["version"]),
        action="promote",
        reason="auto: " + _because(best, policy),
        evidence=evidence or [best],
        runtime="auto",
        dry_run=dry_run,
    )


def _request(backend: Backend, dep: DeploymentInfo, best: dict, policy: Policy) -> int:
    version = int(best["version"])
    evidence = evidence_for(backend, dep.table, version) or [best]
    return request(
        backend, dep.table, version, reason="approval: " + _because(best, policy), evidence=evidence
    )


def request(backend: Backend, table: str, version: int, *, reason: str, evidence=None) -> int:
    """Open a promotion request for ``version`` on the deployment on ``table`` (the one already
    open or approved for it, if any); its id. It is decided by a stage request to production
    that carries the deployment (:func:`indb.governance.stages.request_promotion`, one approval
    flow): the model's stage policy says who approves and which checks pass; the approval that
    completes it switches the deployment (or leaves the switch to ``promote``). For callers
    with evidence of their own (a retraining policy with promote='approval')."""
    dep = comparison.deployment_info(backend, table)
    version = _version(backend, dep, version)
    pending = backend.rows(
        statement("promotion", "pending_request", backend.dialect),
        {"deployment": dep.table, "version": version},
    )
    if pending:
        return int(pending[0][0])
    with backend.transaction():
        found = backend.rows(
            statement("governance", "pending_request", backend.dialect),
            {"model": dep.model, "version": version, "deployment": dep.table},
        )
        if found:
            stage_request = int(found[0][0])
        else:
            stage_request = stages.request_promotion(
                backend, dep.model, version, "production", reason, deployment=dep.table, evidence=evidence
            )
        ((request_id,),) = backend.rows(
            statement("promotion", "open_request", backend.dialect),
            {
                "deployment": dep.table,
                "model": dep.model,
                "version": version,
                "requested_by": backend.user,
                "reason": reason,
                "evidence": _json(evidence),
                "stage_request": stage_request,
            },
        )
    return int(request_id)

"""Stages of model versions and the requests that move them (issue 14.1).

A version's stage (``none``, ``development``, ``staging``, ``production``, ``archived``) changes
only through a request: ``request_promotion`` opens one, ``approve`` / ``reject`` decide it.
The model's policy (``indb.stage_policies``; none: one approver, no checks) says how many
distinct approvers it needs (never the requester), which role they belong to, and which
checks must pass when the last approval arrives; then the stage changes (a new production
version archives the previous one) and the request is done, all audited.

On a backend that enforces roles (PostgreSQL) the server does all of this in SECURITY
DEFINER functions (sql/postgres/governance.sql) as ``session_user``; this module only calls
them. Elsewhere (DuckDB: a file, one user) this module enforces the same rules itself and
records the operating-system user; ``as_user`` names a person acting through that one OS
account, a declaration the file cannot check (documented as single-user).
"""

from __future__ import annotations

import json

from indb import audit
from indb.backends.base import Backend
from indb.errors import DatabaseError, DeploymentError, IndbError, NotFoundError, PermissionDeniedError
from indb.sql import statement


class PolicyError(IndbError, ValueError):
    """A policy, check, stage or request given wrongly: the message says what was expected."""


STAGES = ("none", "development", "staging", "production", "archived")
CHECKS = ("min_metric", "no_open_drift_alert", "parity")


def _sql(backend: Backend, name: str) -> str:
    return statement("governance", name, backend.dialect)


def _checked_checks(require_checks) -> list:
    checks = []
    for check in require_checks or []:
        if check in ("no_open_drift_alert", "parity"):
            checks.append(check)
        elif (
            isinstance(check, dict) and set(check) == {"min_metric"} and isinstance(check["min_metric"], dict)
        ):
            checks.append({"min_metric": {str(k): float(v) for k, v in check["min_metric"].items()}})
        else:
            raise PolicyError(
                f'unknown check {check!r}: use "no_open_drift_alert", "parity" or '
                '{"min_metric": {"roc_auc": 0.8}}'
            )
    return checks


def set_policy(
    backend: Backend,
    model: str,
    approvals: int = 2,
    approver_role: str | None = None,
    require_checks: list | None = None,
) -> dict:
    """Store the model's policy (an admin's on PostgreSQL: others lack the privilege)."""
    if int(approvals) < 1:
        raise PolicyError(f"approvals must be at least 1, not {approvals}")
    if approver_role is not None:
        from indb.identifiers import role_name

        approver_role = role_name(approver_role, "approver")
    checks = _checked_checks(require_checks)
    known = [name for (name,) in backend.rows(_sql(backend, "models"))]
    if model not in known:
        raise NotFoundError("model", model, known)
    with backend.transaction():
        backend.execute(
            _sql(backend, "set_policy"),
            {
                "model": model,
                "approvals": int(approvals),
                "approver_role": approver_role,
                "checks": json.dumps(checks),
                "user": backend.user,
            },
        )
        details = {"approvals": int(approvals), "approver_role": approver_role, "require_checks": checks}
        audit.record(backend, "set stage policy", model, details)
    return {"model": model, **details}


def policy(backend: Backend, model: str) -> dict:
    """The model's stage policy as stored (``source``: ``indb.stage_policies`` or ``default``,
    one approver of indb's approver role and no checks)."""
    known = [name for (name,) in backend.rows(_sql(backend, "models"))]
    if model not in known:
        raise NotFoundError("model", model, known)
    found = backend.rows(_sql(backend, "policy_row"), {"model": model})
    if not found:
        return {
            "model": model,
            "approvals": 1,
            "approver_role": None,
            "require_checks": [],
            "source": "default",
        }
    ((approvals, role, checks, by, at),) = found
    return {
        "model": model,
        "approvals": int(approvals),
        "approver_role": role,
        "require_checks": json.loads(checks) if checks else [],
        "source": "indb.stage_policies",
        "updated_by": by,
        "updated_at": None if at is None else str(at),
    }


def parse_check(text: str):
    """A check as the CLI writes it: ``parity``, ``no_open_drift_alert`` or
    ``min_metric:auc=0.8[,f1=0.6]``."""
    if text in ("parity", "no_open_drift_alert"):
        return text
    kind, _, rest = text.partition(":")
    if kind == "min_metric" and rest:
        minimums = {}
        for part in rest.split(","):
            metric, _, value = part.partition("=")
            try:
                minimums[metric.strip()] = float(value)
            except ValueError:
                raise PolicyError(f"check {text!r}: {part!r} is not METRIC=NUMBER") from None
            if not metric.strip():
                raise PolicyError(f"check {text!r}: {part!r} names no metric")
        return {"min_metric": minimums}
    raise PolicyError(f"unknown check {text!r}: use parity, no_open_drift_alert or min_metric:METRIC=NUMBER")


def stages(backend: Backend, model: str):
    """Each version of ``model`` with its stage."""
    return backend.query(_sql(backend, "stages"), {"model": model})


def requests(backend: Backend, model: str):
    """The stage requests of ``model``, oldest first."""
    return backend.query(_sql(backend, "requests"), {"model": model})


def _server(backend: Backend, as_user: str | None) -> bool:
    if backend.enforces_roles and as_user is not None:
        raise PolicyError(
            "as_user is for single-user databases: here the server acts as the role that logged in"
        )
    return backend.enforces_roles


def request_promotion(
    backend: Backend,
    model: str,
    version: int,
    to_stage: str,
    reason: str | None = None,
    *,
    as_user: str | None = None,
    deployment: str | None = None,
    evidence=None,
) -> int:
    """Open a request to move ``model`` ``version`` to ``to_stage``; its id. With
    ``deployment`` (to production only), the request is also for switching that deployment
    to the version once approved (see :func:`approve`)."""
    if to_stage not in STAGES:
        raise PolicyError(f"unknown stage {to_stage!r}: one of {', '.join(STAGES)}")
    if deployment is not None and to_stage != "production":
        raise PolicyError(
            f"a request that switches deployment {deployment!r} is to production, not {to_stage}"
        )
    params = {
        "model": model,
        "version": int(version),
        "to_stage": to_stage,
        "reason": reason,
        "deployment": deployment,
        "evidence": None if evidence is None else json.dumps(evidence, default=str),
    }
    if _server(backend, as_user):
        ((request,),) = backend.rows(_sql(backend, "request_promotion"), params)
        return int(request)
    user = as_user or audit.os_user()
    with backend.transaction():
        ((found,),) = backend.rows(_sql(backend, "version_exists"), {"model": model, "version": int(version)})
        if not found:
            raise NotFoundError(f"model {model!r} version", int(version))
        if deployment is not None:
            ((runs,),) = backend.rows(
                _sql(backend, "deployment_of_model"), {"table": deployment, "model": model}
            )
            if not runs:
                raise NotFoundError(f"deployment of model {model!r}", deployment)
        ((request,),) = backend.rows(_sql(backend, "insert_request"), {**params, "user": user})
        audit.record(
            backend,
            "request promotion",
            f"{model}@{version}",
            {
                "request": int(request),
                "to_stage": to_stage,
                "reason": reason,
                "deployment": deployment,
                "as_user": user,
            },
        )
    return int(request)


def approve(backend: Backend, request: int, comment: str | None = None, *, as_user: str | None = None) -> str:
    """Approve a request: ``open`` while approvals are missing, ``done`` once the stage changed
    (and a deployment the request names switched to the version, in the same transaction),
    ``approved`` when the stage changed but this session may not switch that deployment (the
    switch waits for ``promote`` by a role that deploys)."""
    return _decide(backend, int(request), "approve", comment, as_user)


def reject(backend: Backend, request: int, comment: str | None = None, *, as_user: str | None = None) -> str:
    """Reject a request: ``rejected``."""
    return _decide(backend, int(request), "reject", comment, as_user)


def _decide(backend: Backend, request: int, decision: str, comment: str | None, as_user: str | None) -> str:
    if _server(backend, as_user):
        return _decide_on_server(backend, request, decision, comment)
    user = as_user or audit.os_user()
    with backend.transaction():
        found = backend.rows(_sql(backend, "request"), {"request": request})
        if not found:
            raise NotFoundError("stage request", request)
        ((model, version, to_stage, requester, status, deployment),) = found
        if status != "open":
            raise DatabaseError(f"stage request {request} is {status}, not open")
        if user == requester:
            raise PermissionDeniedError(f"{user} requested stage request {request} and may not decide it")
        ((decided,),) = backend.rows(_sql(backend, "already_decided"), {"request": request, "user": user})
        if decided:
            raise DatabaseError(f"{user} has already decided stage request {request}")
        needed, checks = _policy(backend, model)
        backend.execute(
            _sql(backend, "insert_decision"),
            {"request": request, "user": user, "decision": decision, "comment": comment},
        )
        where = f"{model}@{version}"
        audit.record(
            backend,
            f"{decision} stage request",
            where,
            {"request": request, "to_stage": to_stage, "comment": comment, "as_user": user},
        )
        if decision == "reject":
            backend.execute(_sql(backend, "set_request_status"), {"request": request, "status": "rejected"})
            backend.execute(_sql(backend, "reject_promotion_requests"), {"request": request, "user": user})
            return "rejected"
        ((approved,),) = backend.rows(
            _sql(backend, "count_approvals"), {"request": request, "requester": requester}
        )
        if approved < needed:
            return "open"
        failure = _check_failure(backend, model, version, checks)
        if failure:
            raise DatabaseError(failure)  # the transaction rolls back: the approval is not kept
        if to_stage == "production":
            backend.execute(_sql(backend, "archive_production"), {"model": model, "version": version})
        backend.execute(_sql(backend, "set_stage"), {"model": model, "version": version, "stage": to_stage})
        pending = deployment is not None and not _runs(backend, deployment, model, version)
        backend.execute(
            _sql(backend, "set_request_status"),
            {"request": request, "status": "approved" if pending else "done"},
        )
        backend.execute(_sql(backend, "approve_promotion_requests"), {"request": request, "user": user})
        audit.record(
            backend,
            "change stage",
            where,
            {"request": request, "to_stage": to_stage, "approvals": int(approved), "as_user": user},
        )
        if pending:  # one user, one file: the switch joins this transaction
            _switch_for(backend, request, deployment, version, user)
    return "done"


def _decide_on_server(backend: Backend, request: int, decision: str, comment: str | None) -> str:
    """The server decides (indb.approve / indb.reject as session_user). A request for a
    deployment comes back ``approved``; when this session may switch that deployment (it owns
    the request table: deploying replaces its triggers) the switch runs in the same
    transaction, so the stage and the deployment change together. Otherwise (approvers seldom
    own request tables) the stage changes, the request stays ``approved`` and the switch waits
    for a role that deploys."""
    with backend.transaction():
        ((status,),) = backend.rows(_sql(backend, decision), {"request": request, "comment": comment})
        if status == "approved":
            ((_, version, _, _, _, deployment),) = backend.rows(
                _sql(backend, "request"), {"request": request}
            )
            ((may,),) = backend.rows(_sql(backend, "may_switch"), {"table": deployment})
            if may:
                _switch_for(backend, request, deployment, int(version), backend.user)
                status = "done"
    return status


def _runs(backend: Backend, deployment: str, model: str, version: int) -> bool:
    ((found,),) = backend.rows(
        _sql(backend, "deployment_runs"), {"table": deployment, "model": model, "version": int(version)}
    )
    return bool(found)


def _switch_for(backend: Backend, request: int, deployment: str, version: int, user: str) -> None:
    from indb.lifecycle import promotion

    promotion.promote(
        backend,
        deployment,
        int(version),
        reason=f"stage request {request} approved (last approval by {user})",
    )


def complete_requests(backend: Backend, table: str) -> None:
    """Mark ``approved`` stage requests done whose deployment now runs their version (called
    in the transaction of every switch)."""
    backend.execute(_sql(backend, "complete_requests"), {"deployment": table})


def switch_approved(backend: Backend, table: str) -> list[int]:
    """Switch the deployment on ``table`` to the version of its latest ``approved`` stage
    request (the approvals are in, the switch waited for a role that deploys); the versions."""
    from indb.lifecycle import promotion

    found = backend.rows(_sql(backend, "approved_requests"), {"deployment": table})
    if not found:
        return []
    ((may,),) = backend.rows(_sql(backend, "may_switch"), {"table": table})
    if not may:  # the next role that may deploy (the deployment's owner, its jobs) switches it
        return []
    ((request, version),) = found
    dep = backend.rows(statement("deployments", "get_deployment", backend.dialect), {"table_name": table})
    if dep and int(dep[0][2]) == int(version):  # switched some other way (a deploy) meanwhile
        complete_requests(backend, table)
        return []
    promotion.promote(backend, table, int(version), reason=f"stage request {int(request)} approved")
    return [int(version)]


def _policy(backend: Backend, model: str) -> tuple[int, list]:
    found = backend.rows(_sql(backend, "policy"), {"model": model})
    if not found:
        return 1, []
    ((approvals, _role, checks),) = found
    return int(approvals), json.loads(checks) if checks else []


def _check_failure(backend: Backend, model: str, version: int, checks: list) -> str | None:
    """The first failing check, as a sentence (the same words as indb.stage_check_failure)."""
    ((metrics,),) = backend.rows(_sql(backend, "version_metrics"), {"model": model, "version": version})
    metrics = json.loads(metrics) if metrics else {}
    for check in checks:
        if check == "parity":
            from indb.governance import parity

            failure = parity.failure(backend, model, version)
            if failure:
                return failure
            continue
        if check == "no_open_drift_alert":
            ((alerts,),) = backend.rows(_sql(backend, "open_alerts"), {"model": model, "version": version})
            if alerts:
                return (
                    f"check no_open_drift_alert failed: {model} version {version} "
                    "has open alerts on its deployments"
                )
            continue
        for metric, minimum in check["min_metric"].items():
            value = metrics.get(metric)
            if value is None or float(value) < minimum:
                shown = "not recorded" if value is None else value
                return (
                    f"check min_metric failed: {metric} of {model} version {version} is {shown}, "
                    f"the policy needs at least {minimum}"
                )
    return None


def check_deployable(backend: Backend, table: str, model: str, version: int) -> None:
    """Refuse a version outside the stage the deployment on ``table`` is marked with."""
    found = backend.rows(
        _sql(backend, "required_stage"), {"table": table, "model": model, "version": version}
    )
    if found and found[0][0] is not None and found[0][1] != found[0][0]:
        required, stage = found[0]
        raise DeploymentError(
            f"deployment {table!r} takes only versions in stage {required}: {model} version {version} "
            f"is in stage {stage or 'none'} (db.request_promotion({model!r}, {version}, {required!r}, ...))"
        )


def require_stage(backend: Backend, table: str, stage: str | None = "production") -> None:
    """Mark the deployment on ``table``: from now on it takes only versions in ``stage``
    (None: unmark). Its current version must be in that stage already."""
    if stage is not None and stage not in STAGES:
        raise PolicyError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    found = backend.rows(statement("deployments", "get_deployment", backend.dialect), {"table_name": table})
    if not found:
        raise NotFoundError("deployment", table)
    model, version = found[0][1], int(found[0][2])
    with backend.transaction():
        backend.execute(_sql(backend, "require_stage"), {"table": table, "stage": stage})
        if stage is not None:
            check_deployable(backend, table, model, version)
        audit.record(backend, "require stage", table, {"stage": stage, "model": model, "version": version})

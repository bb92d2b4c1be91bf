"""Creating, listing, changing and removing jobs (``indb.jobs``), and reading their runs.

Each change is a :class:`Plan` first: the statements it would run with their bound parameters
apart, so ``dry_run`` (``indb jobs ... --dry-run``) shows exactly what runs. Where the database
has procedures (PostgreSQL) the plan is one call of the server's own function
(``indb.schedule``, ``indb.unschedule``, ``indb.enable_job``), which also keeps pg_cron's entry
in step; elsewhere it writes the catalog rows here, and audits them like other catalog changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from indb import audit, identifiers
from indb.backends.base import Backend
from indb.errors import JobError, NotFoundError
from indb.governance import collaboration
from indb.jobs import actions, schedules
from indb.jobs.clock import SYSTEM, Clock
from indb.sql import statement

CATCH_UP = ("latest", "all", "none")


@dataclass(frozen=True)
class JobSpec:
    """What ``db.schedule(...)`` takes: a job's definition before it is stored."""

    name: str
    schedule: str | None
    action: str
    arguments: dict = field(default_factory=dict)
    timezone: str = "UTC"
    on_alert: dict | None = None
    retries: int = 0
    retry_delay: float = 60
    timeout: float | None = None
    alert_after_failures: int = 3
    catch_up: str = "latest"
    comment: str | None = None
    enabled: bool = True

    def checked(self) -> JobSpec:
        """This spec with the action's defaults filled in, or a :class:`JobError` /
        :class:`~indb.jobs.schedules.ScheduleError` naming the first thing wrong."""
        job_name(self.name)
        if self.schedule is None and self.on_alert is None:
            raise JobError(f"job {self.name!r} needs a schedule, an on_alert, or both")
        if self.schedule is not None:
            schedules.parse(self.schedule, self.timezone)
        else:
            schedules.timezone(self.timezone)
        arguments = actions.get(self.action).check(dict(self.arguments or {}))
        _check_on_alert(self.on_alert)
        for option, value, low in (
            ("retries", self.retries, 0),
            ("retry_delay", self.retry_delay, 0),
            ("alert_after_failures", self.alert_after_failures, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise JobError(f"job {self.name!r}: {option} must be a number >= {low}, not {value!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or self.timeout <= 0
        ):
            raise JobError(
                f"job {self.name!r}: timeout must be a number of seconds > 0, not {self.timeout!r}"
            )
        if self.catch_up not in CATCH_UP:
            raise JobError(
                f"job {self.name!r}: catch_up must be one of {', '.join(CATCH_UP)}, not {self.catch_up!r}"
            )
        try:
            json.dumps(arguments)
        except (TypeError, ValueError) as e:
            raise JobError(f"job {self.name!r}: arguments must be JSON values ({e})") from None
        return JobSpec(**{**asdict(self), "arguments": arguments})

    def options(self) -> dict:
        """The options object of ``indb.schedule(name, schedule, action, arguments, options)``."""
        given = {
            "timezone": self.timezone,
            "on_alert": self.on_alert,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "alert_after_failures": self.alert_after_failures,
            "catch_up": self.catch_up,
            "comment": self.comment,
            "enabled": self.enabled,
        }
        return {key: value for key, value in given.items() if value is not None}


# pg_cron's entry for a job is named indb.<job>, which must fit PostgreSQL's 63 characters.
MAX_JOB_NAME = 58


def job_name(value: object) -> str:
    return identifiers._check(
        value,
        "job",
        identifiers._OBJECT_NAME,
        MAX_JOB_NAME,
        "lowercase letters, digits and underscores, starting with a letter or underscore",
    )


def _check_on_alert(on_alert: Any) -> None:
    if on_alert is None:
        return
    if not isinstance(on_alert, dict) or not isinstance(on_alert.get("monitor"), str):
        raise JobError(f'on_alert is {{"monitor": name, "metric": name (optional)}}, not {on_alert!r}')
    unknown = sorted(set(on_alert) - {"monitor", "metric"})
    if unknown:
        raise JobError(f"on_alert has no key {unknown[0]!r} (it takes: monitor, metric)")
    if on_alert.get("metric") is not None and not isinstance(on_alert["metric"], str):
        raise JobError(f"on_alert's metric is a metric name, not {on_alert['metric']!r}")


@dataclass(frozen=True)
class Job:
    """A stored job (a row of ``indb.jobs``)."""

    name: str
    schedule: str | None
    timezone: str
    action: str
    arguments: dict
    enabled: bool
    on_alert: dict | None
    retries: int
    retry_delay: float
    timeout: float | None
    alert_after_failures: int
    catch_up: str
    next_run: datetime | None
    last_alert_id: int
    owner: str
    comment: str | None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def parsed(self) -> schedules.Schedule | None:
        return None if self.schedule is None else schedules.parse(self.schedule, self.timezone)


@dataclass(frozen=True)
class Plan:
    """The statements a change runs, each with its bound parameters (never pasted into it)."""

    statements: tuple[tuple[str, dict], ...]
    audit: tuple[str, str, dict] | None = None  # (action, object, details) logged with it

    def __str__(self) -> str:
        parts = []
        for text, params in self.statements:
            parts.append(text + ";")
            if params:
                parts.append(f"-- parameters: {json.dumps(params, default=str)}")
        if self.audit:
            parts.append(f"-- and one audit log row: {self.audit[0]} {self.audit[1]}")
        return "\n".join(parts)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def get(backend: Backend, name: str) -> Job:
    found = backend.rows(statement("jobs", "get_job", backend.dialect), {"name": name})
    if not found:
        known = [row[0] for row in backend.rows(statement("jobs", "job_names", backend.dialect))]
        raise NotFoundError("job", name, known)
    row = list(found[0])
    row[4], row[6] = _loads(row[4]) or {}, _loads(row[6])
    return Job(*row)


def plan_schedule(backend: Backend, spec: JobSpec, clock: Clock = SYSTEM) -> Plan:
    spec = spec.checked()
    if backend.supports_procedures:
        params = {
            "name": spec.name,
            "schedule": spec.schedule,
            "action": spec.action,
            "arguments": _json(spec.arguments),
            "options": _json(spec.options()),
        }
        return Plan(((statement("jobs", "server_schedule", backend.dialect), params),))
    now = clock.now()
    parsed = None if spec.schedule is None else schedules.parse(spec.schedule, spec.timezone)
    params = {
        "name": spec.name,
        "schedule": parsed.text if parsed else None,
        "timezone": spec.timezone,
        "action": spec.action,
        "arguments": _json(spec.arguments),
        "enabled": spec.enabled,
        "on_alert": _json(spec.on_alert),
        "retries": spec.retries,
        "retry_delay": float(spec.retry_delay),
        "timeout": None if spec.timeout is None else float(spec.timeout),
        "alert_after_failures": spec.alert_after_failures,
        "catch_up": spec.catch_up,
        "next_run": parsed.next_run(now) if parsed and spec.enabled else None,
        "owner": backend.user,
        "comment": spec.comment,
        "now": now,
    }
    details = {"schedule": params["schedule"], "action": spec.action, "arguments": spec.arguments}
    return Plan(
        ((statement("jobs", "insert_job", backend.dialect), params),), ("schedule_job", spec.name, details)
    )


def _run(backend: Backend, plan: Plan) -> list:
    results = []
    with backend.transaction():
        for text, params in plan.statements:
            results.append(backend.rows(text, params))
        if plan.audit:
            audit.record(backend, *plan.audit)
    return results


def schedule(backend: Backend, spec: JobSpec, *, dry_run: bool = False, clock: Clock = SYSTEM) -> Job | Plan:
    plan = plan_schedule(backend, spec, clock)
    if dry_run:
        return plan
    if not backend.supports_procedures and backend.rows(
        statement("jobs", "get_job", backend.dialect), {"name": spec.name}
    ):
        raise JobError(f"job {spec.name!r} exists already: unschedule it first, or pick another name")
    _run(backend, plan)
    return get(backend, spec.name)


def plan_unschedule(backend: Backend, name: str) -> Plan:
    if backend.supports_procedures:
        return Plan(((statement("jobs", "server_unschedule", backend.dialect), {"name": name}),))
    job = get(backend, name)
    details = {"schedule": job.schedule, "action": job.action, "arguments": job.arguments}
    forget = collaboration.forget_statements(backend, "job", name)
    return Plan(
        ((statement("jobs", "delete_job", backend.dialect), {"name": name}), *forget),
        ("unschedule_job", name, details),
    )


def unschedule(backend: Backend, name: str, *, dry_run: bool = False) -> Plan:
    """Remove a job (its runs stay in ``indb.job_runs``)."""
    plan = plan_unschedule(backend, name)
    if not dry_run:  # an unknown job: NotFoundError from get() or from the server's function
        _run(backend, plan)
    return plan


def plan_enable(backend: Backend, name: str, enabled: bool, clock: Clock = SYSTEM) -> Plan:
    if backend.supports_procedures:
        return Plan(
            ((statement("jobs", "server_enable_job", backend.dialect), {"name": name, "enabled": enabled}),)
        )
    job = get(backend, name)
    now = clock.now()
    # Enabled again: due from now on (what fell due while disabled is not caught up).
    next_run = job.parsed.next_run(now) if enabled and job.parsed else None
    params = {"name": name, "enabled": bool(enabled), "next_run": next_run, "now": now}
    action = "enable_job" if enabled else "disable_job"
    return Plan(((statement("jobs", "set_enabled", backend.dialect), params),), (action, name, {}))


def enable(
    backend: Backend, name: str, enabled: bool = True, *, dry_run: bool = False, clock: Clock = SYSTEM
) -> Plan:
    plan = plan_enable(backend, name, enabled, clock)
    if not dry_run:
        _run(backend, plan)
    return plan


def jobs(backend: Backend) -> pd.DataFrame:
    return backend.query(statement("jobs", "list_jobs", backend.dialect))


def runs(backend: Backend, name: str | None = None, limit: int = 100) -> pd.DataFrame:
    """The latest runs, newest first, of one job or all."""
    found = backend.query(statement("jobs", "job_runs", backend.dialect), {"job": name, "limit": int(limit)})
    if found.empty and name is not None:
        get(backend, name)  # a name that is no job (a removed job's runs are still shown)
    return found

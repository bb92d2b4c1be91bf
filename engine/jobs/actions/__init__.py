"""The things a job can do, by name. Each action is a small module that registers one function
``run(backend, arguments, context) -> dict``; the dict is the run's result JSON (its ``rows``,
when present, becomes ``job_runs.rows_affected``). An action that fails after recording
something it must keep (a failed training run) returns its message as ``error`` instead of
raising: the run is recorded ``failed`` with that error and the action's writes stay. Later
subsystems (retraining) add their own actions by registering them here.

Arguments per action (the same keys on every backend; PostgreSQL's ``indb.run_job`` reads them):

- ``run_monitor``: ``monitor``
- ``ingest``: ``feature_set``, ``query`` (one read-only SELECT)
- ``refresh_feature_set``: ``feature_set`` (re-reads the feature set's stored source query)
- ``rebuild_training_set``: ``training_set``, optional ``cutoff`` (default: now)
- ``materialize_latest``: ``feature_set``
- ``retain``: ``days``; ``deployment`` (with optional ``tables``: any of ``requests``,
  ``predictions``, ``ground_truth``) or ``job_runs: true``; optional ``batch_size`` (10000),
  ``archive`` (false: delete; true: move rows to ``<table>_archive`` first)
- ``sql``: ``statement`` (one statement, run as the job's owner)
- ``retrain``: ``model``, optional ``max_rows`` (runs its retraining policy, indb.lifecycle.retraining)
- ``evaluate_challengers``: ``deployment``; optional ``windows`` (["all", "7 days"]),
  ``resamples`` (1000), ``seed`` (0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from indb.errors import IndbError


@dataclass(frozen=True)
class Context:
    """What an action knows about the run it is part of."""

    job: str
    run_id: int
    owner: str
    scheduled_for: datetime | None
    now: datetime


@dataclass(frozen=True)
class Action:
    name: str
    run: Callable[..., dict]
    required: tuple[str, ...] = ()
    optional: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def check(self, arguments: dict) -> dict:
        """The arguments with defaults filled in; unknown or missing keys are a clear error."""
        if not isinstance(arguments, dict):
            raise IndbError(f"action {self.name!r} takes its arguments as a JSON object")
        unknown = sorted(set(arguments) - set(self.required) - set(self.optional))
        if unknown:
            known = ", ".join([*self.required, *self.optional]) or "none"
            raise IndbError(f"action {self.name!r} has no argument {unknown[0]!r} (it takes: {known})")
        missing = [key for key in self.required if arguments.get(key) is None]
        if missing:
            raise IndbError(f"action {self.name!r} needs the argument {missing[0]!r}")
        return {**self.optional, **arguments}


ACTIONS: dict[str, Action] = {}


def register(action: Action) -> Action:
    ACTIONS[action.name] = action
    return action


def get(name: str) -> Action:
    _load()
    try:
        return ACTIONS[name]
    except KeyError:
        raise IndbError(f"unknown job action {name!r}: use one of {', '.join(sorted(ACTIONS))}") from None


def _load() -> None:
    """Import the built-in action modules (each registers itself)."""
    from importlib import import_module

    for module in (
        "run_monitor",
        "ingest",
        "refresh_feature_set",
        "rebuild_training_set",
        "materialize_latest",
        "retain",
        "sql_statement",
        "retrain",
        "evaluate_challengers",
    ):
        import_module(f"indb.jobs.actions.{module}")

"""``retrain``: run a model's retraining policy (``model``; optional ``max_rows``, a cap on the
rebuilt training set's rows), as ``db.retrain`` does, with the
run's time as the training set's cutoff; the training run records the job run's id and
``triggered_by``: ``alert:<alert id>`` when an alert started the run (``on_alert``), else
``job:<job>``.

Result: ``training_run`` (its id), ``status`` (succeeded, failed, skipped), ``version`` (the new
one, or null), ``parent_version``, ``metrics`` and ``champion_metrics`` (holdout), ``skipped``
(the reason) and ``error``. A failed fit is returned as ``error`` rather than raised: the job run
is recorded ``failed`` with it, and the ``failed`` row of ``indb.training_runs`` stays (raising
would roll it back where actions run in a transaction of their own, inside PostgreSQL).
"""

from __future__ import annotations

from indb import identifiers
from indb.jobs.actions import Action, _checks, register


def _trigger(backend, context) -> str:
    """``alert:<id>`` for a run an alert started (the job's last_alert_id), else ``job:<name>``."""
    from indb.sql import statement

    found = backend.rows(statement("lifecycle", "job_trigger", backend.dialect), {"run_id": context.run_id})
    if found and found[0][0] == "alert" and found[0][1]:
        return f"alert:{int(found[0][1])}"
    return f"job:{context.job}"


def run(backend, arguments: dict, context) -> dict:
    from indb.lifecycle import retraining

    model = identifiers.model_name(arguments["model"])
    cap = arguments.get("max_rows")
    result = retraining.retrain(
        backend,
        model,
        triggered_by=_trigger(backend, context),
        now=context.now,
        job_run_id=context.run_id,
        max_rows=None if cap is None else _checks.whole("retrain", "max_rows", cap, minimum=1),
    )
    return {
        "training_run": result.id,
        "status": result.status,
        "version": result.version,
        "parent_version": result.parent_version,
        "training_set_version": result.training_set_version,
        "metrics": result.metrics,
        "champion_metrics": result.champion_metrics,
        "skipped": (result.notes or {}).get("skipped"),
        "error": result.error,
        "notes": result.notes,
    }


ACTION = register(
    Action(
        "retrain",
        run,
        required=("model",),
        optional={"max_rows": None},
        description="run a model's retraining policy now",
    )
)

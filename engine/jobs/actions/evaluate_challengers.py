"""``evaluate_challengers``: compare a deployment's challengers with its champion, store the
comparison and apply the model's retraining policy (``deployment``; optional ``windows``,
``resamples``, ``seed``), as ``db.evaluate_challengers`` does.

Result: ``deployment``, ``evaluation_id``, ``decision`` (promoted, requested, reported, no
challenger better), ``version``, ``request_id``, ``policy`` and ``candidates``.
"""

from __future__ import annotations

from indb import identifiers
from indb.jobs.actions import Action, _checks, register


def run(backend, arguments: dict, context) -> dict:
    from indb.lifecycle import promotion

    table = identifiers.table_name(
        _checks.text("evaluate_challengers", "deployment", arguments["deployment"])
    )
    options = {"seed": _checks.whole("evaluate_challengers", "seed", arguments["seed"], minimum=0)}
    options["resamples"] = _checks.whole(
        "evaluate_challengers", "resamples", arguments["resamples"], minimum=100
    )
    if arguments.get("windows") is not None:
        options["windows"] = list(arguments["windows"])
    evaluation = promotion.evaluate(backend, table, **options)
    summary = evaluation.summary()
    summary["rows"] = len(evaluation.comparison.rows)
    return summary


ACTION = register(
    Action(
        "evaluate_challengers",
        run,
        required=("deployment",),
        optional={"windows": None, "resamples": 1000, "seed": 0},
        description="compare a deployment's challengers and apply its retraining policy",
    )
)

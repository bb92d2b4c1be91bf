"""``rebuild_training_set``: a new version of a training set (``training_set``) from its stored
definition, with spine rows up to ``cutoff`` (an ISO time, UTC; default: the run's time), as
``db.rebuild_training_set`` does.

Result: ``training_set``, ``version`` (the new one), ``rows``, ``cutoff``, ``table``.
"""

from __future__ import annotations

from indb.jobs.actions import Action, _checks, register


def run(backend, arguments: dict, context) -> dict:
    from indb.feature_store import training

    name = _checks.text("rebuild_training_set", "training_set", arguments["training_set"])
    given = arguments.get("cutoff")
    cutoff = context.now if given is None else _checks.moment("rebuild_training_set", "cutoff", given)
    built = training.rebuild(backend, name, cutoff=cutoff)
    return {
        "training_set": built.name,
        "version": built.version,
        "rows": int(built.row_count),
        "cutoff": cutoff.isoformat(sep=" "),
        "table": built.table,
    }


ACTION = register(
    Action(
        "rebuild_training_set",
        run,
        required=("training_set",),
        optional={"cutoff": None},
        description="a new version of a training set from its stored definition",
    )
)

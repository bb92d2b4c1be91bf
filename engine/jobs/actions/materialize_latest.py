"""``materialize_latest``: rebuild a feature set's latest-values table (``fs_<name>_v<N>_latest``,
newest version) from its history table in one transaction, as ``db.materialize_online`` does.

Result: ``feature_set``, ``version``, ``rows`` (rows in the latest-values table).
"""

from __future__ import annotations

from indb.jobs.actions import Action, register


def run(backend, arguments: dict, context) -> dict:
    from indb.feature_store import online, sets

    fs = sets.get(backend, arguments["feature_set"])
    rows = online.materialize(backend, fs.name, fs.version)
    return {"feature_set": fs.name, "version": fs.version, "rows": int(rows)}


ACTION = register(
    Action(
        "materialize_latest",
        run,
        required=("feature_set",),
        description="rebuild a feature set's latest-values table from its history",
    )
)

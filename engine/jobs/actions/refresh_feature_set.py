"""``refresh_feature_set``: re-read a feature set's stored source (the table or SELECT its newest
version was created from, ``indb.feature_sets.source``) and append the rows whose entity keys
and event time are not stored yet (see :mod:`indb.feature_store.refresh`).

A feature set created from a DataFrame or from ``columns=`` has no source to re-read: the
action refuses it and names the feature set. Result: ``feature_set``, ``version``, ``rows``
(rows added; 0 when the source has nothing new).
"""

from __future__ import annotations

from indb.jobs.actions import Action, register


def run(backend, arguments: dict, context) -> dict:
    from indb.feature_store import refresh

    fs, rows = refresh.refresh(backend, arguments["feature_set"])
    return {"feature_set": fs.name, "version": fs.version, "rows": int(rows)}


ACTION = register(
    Action(
        "refresh_feature_set",
        run,
        required=("feature_set",),
        description="append the new rows of a feature set's stored source query",
    )
)

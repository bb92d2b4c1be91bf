"""``ingest``: append the rows of one read-only SELECT (``query``) to a feature set
(``feature_set``, its newest version), in one transaction, as ``db.ingest`` does.

The query is checked by :mod:`indb.userquery` (one SELECT, nothing that writes) before
anything runs. Result: ``feature_set``, ``version``, ``rows`` (rows loaded).
"""

from __future__ import annotations

from indb import userquery
from indb.jobs.actions import Action, _checks, register


def run(backend, arguments: dict, context) -> dict:
    from indb.feature_store import sets

    query = _checks.text("ingest", "query", arguments["query"])
    userquery.select_query(query, backend.dialect, "query of action 'ingest'")
    fs = sets.get(backend, arguments["feature_set"])
    rows = sets.ingest(backend, fs.name, query, version=fs.version)
    return {"feature_set": fs.name, "version": fs.version, "rows": int(rows)}


ACTION = register(
    Action(
        "ingest",
        run,
        required=("feature_set", "query"),
        description="append the rows of a SELECT to a feature set",
    )
)

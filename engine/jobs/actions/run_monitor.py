"""``run_monitor``: one run of a monitor (``monitor``), as ``indb monitor run`` does it.

Result: ``monitor``, ``run_id`` (the monitor run), ``windows``, ``results``, ``crossed``
(results over their threshold) and ``alerts`` (ids of the alerts the run opened or updated).
PostgreSQL's in-server equivalent is ``CALL indb.run_monitor(monitor)``.
"""

from __future__ import annotations

from indb import identifiers
from indb.jobs.actions import Action, register


def run(backend, arguments: dict, context) -> dict:
    from indb.monitoring import runner

    name = identifiers.monitor_name(arguments["monitor"])
    summary = runner.run(backend, name)
    return {
        "monitor": name,
        "run_id": summary.run_id,
        "windows": summary.windows,
        "results": summary.results,
        "crossed": summary.crossed,
        "alerts": [int(i) for i in summary.alerts["id"]] if len(summary.alerts) else [],
    }


ACTION = register(
    Action("run_monitor", run, required=("monitor",), description="run a monitor over its new windows")
)

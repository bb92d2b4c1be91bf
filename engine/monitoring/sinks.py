"""Alerts after they open: acknowledging and resolving them, and sending new ones to sinks.

An alert stands for one ongoing condition (a monitor's column and metric over its threshold,
per model version); runs update it instead of opening another while it is open or
acknowledged. Resolving it ends it: a later crossing opens a new alert.

Sinks (rows of ``indb.alert_sinks``) receive every alert opened after the sink was added, as
JSON: ``webhook`` POSTs it to a URL; ``command`` runs an argv list with it on stdin (no
shell); ``notify`` sends it on a PostgreSQL NOTIFY channel from inside ``indb.run_monitor``,
so runs scheduled by pg_cron reach listeners with no client. Webhooks and commands are sent
by the process that ran the monitor (``db.run_monitor``, the CLI, the scheduler), after the
run committed; one that fails stays pending and is retried by the next run.

A sink is a row any role with INSERT on ``indb.alert_sinks`` could write, so a command runs
only where the process running the monitor allows its program: ``INDB_ALERT_COMMANDS`` lists
the allowed programs (argv[0], separated by ``os.pathsep``); any other stays pending with a
warning. Otherwise a role that can add a sink would run code as whoever runs the monitor.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
import warnings

import pandas as pd

from indb import audit, identifiers
from indb.backends.base import Backend
from indb.errors import NotFoundError
from indb.monitoring import monitors
from indb.sql import statement

KINDS = ("webhook", "notify", "command")
STATUSES = ("acknowledged", "resolved")
TIMEOUT = 10  # seconds a webhook or command may take
ALLOWED_COMMANDS = "INDB_ALERT_COMMANDS"  # programs this process may run for command sinks


class SinkRefused(OSError):
    """A sink this process will not send to (a command it was not allowed to run)."""


def add_sink(backend: Backend, monitor: str, kind: str, target) -> dict:
    """Send ``monitor``'s new alerts to a webhook URL, a NOTIFY channel or a command (argv)."""
    monitors.get(backend, monitor)
    if kind not in KINDS:
        raise NotFoundError("alert sink kind", kind, list(KINDS))
    if kind == "webhook":
        url = urllib.parse.urlsplit(target) if isinstance(target, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.hostname:
            raise monitors.MonitorError(f"webhook sink needs an http(s) URL, got {target!r}")
        stored = target
    elif kind == "notify":
        if not backend.supports_notify:
            raise monitors.MonitorError("this database has no NOTIFY channels; use a webhook or command sink")
        stored = identifiers.alias_name(target)
    else:
        if isinstance(target, str) or not target or not all(isinstance(a, str) for a in target):
            raise monitors.MonitorError(
                f"command sink needs an argv list of strings (run without a shell), got {target!r}"
            )
        stored = json.dumps(list(target))
    row = {"monitor": monitor, "kind": kind, "target": stored}
    with backend.transaction():
        backend.execute(statement("monitoring", "insert_sink", backend.dialect), row)
        audit.record(backend, "add_alert_sink", monitor, row)
    return row


def sinks(backend: Backend, monitor: str) -> pd.DataFrame:
    return backend.query(statement("monitoring", "sinks", backend.dialect), {"monitor": monitor})


def set_status(backend: Backend, alert_id: int, status: str, note: str | None = None) -> dict:
    """Acknowledge or resolve one alert; returns it with its new status."""
    if status not in STATUSES:
        raise NotFoundError("alert status", status, list(STATUSES))
    if isinstance(alert_id, bool) or not isinstance(alert_id, int):
        raise monitors.MonitorError(f"alert id must be an integer, got {alert_id!r}")
    with backend.transaction():
        found = backend.rows(statement("monitoring", "get_alert", backend.dialect), {"id": alert_id})
        if not found:
            raise NotFoundError("alert", str(alert_id))
        if found[0][2] == "resolved":
            raise monitors.MonitorError(f"alert {alert_id} is already resolved")
        backend.execute(
            statement("monitoring", "set_alert_status", backend.dialect),
            {"id": alert_id, "status": status, "actor": backend.user, "note": note},
        )
        audit.record(backend, f"{status[:-1]}_alert", found[0][1], {"alert": alert_id, "note": note})
    return {"id": alert_id, "monitor": found[0][1], "status": status}


def deliver(backend: Backend, monitor: str) -> int:
    """Send the pending alerts of ``monitor``'s webhook and command sinks; returns how many
    were sent. A sink that fails keeps its pending alerts for the next run (with a warning)."""
    sent = 0
    for sink_id, _, kind, target, last in backend.rows(
        statement("monitoring", "sinks", backend.dialect), {"monitor": monitor}
    ):
        if kind == "notify":
            continue  # sent by indb.run_monitor itself
        pending = backend.query(
            statement("monitoring", "pending_alerts", backend.dialect),
            {"monitor": monitor, "after": int(last)},
        )
        for alert in pending.to_dict("records"):
            payload = json.dumps({k: _plain(v) for k, v in alert.items()}).encode()
            try:
                _send(kind, target, payload)
            except (OSError, subprocess.SubprocessError) as e:
                warnings.warn(
                    f"alert sink {sink_id} ({kind}) failed, alert {alert['id']} stays pending: {e}",
                    stacklevel=2,
                )
                break
            last, sent = int(alert["id"]), sent + 1
            with backend.transaction():
                backend.execute(
                    statement("monitoring", "sink_sent", backend.dialect), {"id": sink_id, "last": last}
                )
    return sent


def _send(kind: str, target: str, payload: bytes) -> None:
    if kind == "webhook":
        request = urllib.request.Request(
            target, data=payload, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
        return
    argv = json.loads(target)
    allowed = [a for a in os.environ.get(ALLOWED_COMMANDS, "").split(os.pathsep) if a]
    if argv[0] not in allowed:
        raise SinkRefused(f"{argv[0]!r} is not in {ALLOWED_COMMANDS} of the process running the monitor")
    subprocess.run(argv, input=payload, timeout=TIMEOUT, check=True, capture_output=True)


def _plain(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value

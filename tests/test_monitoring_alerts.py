"""Alerts: one alert per ongoing condition, acknowledged or resolved from Python, SQL and the
CLI, and sent to sinks (a local webhook receiver, a command, a PostgreSQL NOTIFY channel)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

import indb
from indb import cli
from tests.test_monitoring_drift import deployed, load

DAYS = ["2024-02-01", "2024-02-02", "2024-02-03", "2024-02-04"]


def _day(db, day: int, shift: float) -> None:
    rng = np.random.default_rng(day)
    frame = pd.DataFrame(
        {"x": rng.normal(shift, 1, 200), "y": rng.exponential(1, 200), "c": rng.choice(list("abc"), 200)}
    )
    load(db, frame, DAYS[day])


def _monitor(db) -> None:
    deployed(db)
    _day(db, 0, 0.0)
    db.create_monitor(
        "m", "requests", reference=(DAYS[0], DAYS[1]), window="1 day", features=["x"], thresholds={"psi": 0.2}
    )


def _alert(db, metric: str, status: str | None = None) -> pd.Series:
    alerts = db.alerts("m")
    chosen = alerts[(alerts.feature == "x") & (alerts.metric == metric)]
    if status is not None:
        chosen = chosen[chosen.status == status]
    assert len(chosen) == 1, chosen
    return chosen.iloc[0]


def test_an_ongoing_condition_is_one_alert_until_resolved(db, capsys):
    _monitor(db)
    _day(db, 1, 2.0)
    db.run_monitor("m")
    first = db.alerts("m")
    assert set(first.metric) == {"psi", "wasserstein", "js"} and set(first.seen_count) == {1}
    _day(db, 2, 2.0)
    summary = db.run_monitor("m")
    assert len(summary.alerts) == 3  # the same three, updated
    again = db.alerts("m")
    assert list(again.id) == list(first.id)
    assert set(again.seen_count) == {2}
    assert (again.last_seen >= again.first_seen).all()
    assert {str(t.date()) for t in again.last_window_start} == {DAYS[2]}
    assert {str(t.date()) for t in again.window_start} == {DAYS[1]}

    psi, wasserstein = _alert(db, "psi"), _alert(db, "wasserstein")
    assert db.resolve_alert(int(psi.id), note="known shift")["status"] == "resolved"
    assert (
        cli.main(["monitor", "alerts", "m", "--db", db.url, "--acknowledge", str(int(wasserstein.id))]) == 0
    )
    assert f"alert {int(wasserstein.id)} of monitor m: acknowledged" in capsys.readouterr().out
    with pytest.raises(indb.IndbError, match="already resolved"):
        db.resolve_alert(int(psi.id))
    with pytest.raises(indb.NotFoundError):
        db.acknowledge_alert(999_999)

    _day(db, 3, 2.0)
    db.run_monitor("m")
    resolved, reopened = _alert(db, "psi", "resolved"), _alert(db, "psi", "open")
    assert resolved.seen_count == 2 and resolved.note == "known shift" and resolved.resolved_by
    assert reopened.seen_count == 1 and str(reopened.window_start.date()) == DAYS[3]
    acknowledged = _alert(db, "wasserstein")
    assert acknowledged.status == "acknowledged" and acknowledged.seen_count == 3
    assert acknowledged.acknowledged_at is not None and not pd.isna(acknowledged.acknowledged_at)
    assert cli.main(["monitor", "alerts", "m", "--db", db.url, "--resolve", str(int(reopened.id))]) == 0
    assert cli.main(["monitor", "alerts", "m", "--db", db.url]) == 0
    shown = capsys.readouterr().out
    assert "wasserstein" in shown and "psi" not in shown.split("\n", 1)[1]


def test_sql_clients_acknowledge_and_resolve_on_postgresql(db):
    if not db.backend.supports_procedures:
        pytest.skip("SQL functions for alerts are PostgreSQL's")
    _monitor(db)
    _day(db, 1, 2.0)
    db.sql("CALL indb.run_monitor('m')")
    psi = int(_alert(db, "psi").id)
    assert db.sql("SELECT indb.acknowledge_alert($id) AS s", {"id": psi}).s[0] == "acknowledged"
    assert db.sql("SELECT indb.resolve_alert($id, 'fixed') AS s", {"id": psi}).s[0] == "resolved"
    with pytest.raises(indb.IndbError, match="already resolved"):
        db.sql("SELECT indb.resolve_alert($id)", {"id": psi})
    assert _alert(db, "psi").note == "fixed"


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Receiver.received
    server.shutdown()
    server.server_close()


def test_new_alerts_reach_a_webhook_and_a_command_once(db, webhook, tmp_path, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("INDB_ALERT_COMMANDS", sys.executable)
    _monitor(db)
    out = tmp_path / "alerts.jsonl"
    writer = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    db.add_alert_sink("m", "webhook", url)
    db.add_alert_sink("m", "command", [sys.executable, "-c", writer])
    with pytest.raises(indb.IndbError, match="http"):
        db.add_alert_sink("m", "webhook", "file:///etc/passwd")
    with pytest.raises(indb.IndbError, match="argv list"):
        db.add_alert_sink("m", "command", "rm -rf /")
    _day(db, 1, 2.0)
    db.run_monitor("m")
    assert {h for h, _ in received} == {"application/json"}
    sent = {(a["feature"], a["metric"]) for _, a in received}
    assert sent == {("x", "psi"), ("x", "wasserstein"), ("x", "js")}
    assert {a["status"] for _, a in received} == {"open"} and received[0][1]["window_start"].startswith(
        DAYS[1]
    )
    by_command = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(a["id"] for a in by_command) == sorted(a["id"] for _, a in received)
    _day(db, 2, 2.0)
    db.run_monitor("m")  # the same conditions: no new alerts, nothing sent again
    assert len(received) == 3 and len(out.read_text().splitlines()) == 3


def test_a_failing_webhook_keeps_its_alerts_for_the_next_run(db, webhook):
    url, received = webhook
    _monitor(db)
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    db.add_alert_sink("m", "webhook", dead)
    _day(db, 1, 2.0)
    with pytest.warns(UserWarning, match="stays pending"):
        db.run_monitor("m")
    db.sql("UPDATE indb.alert_sinks SET target = $url", {"url": url})
    _day(db, 2, 2.0)
    db.run_monitor("m")
    assert len(received) == 3


def test_a_command_runs_only_where_the_monitoring_process_allows_it(db, tmp_path, monkeypatch):
    """A sink is a row: a role that can insert one must not run code as whoever runs the monitor."""
    _monitor(db)
    out = tmp_path / "ran"
    db.add_alert_sink("m", "command", [sys.executable, "-c", f"open({str(out)!r}, 'w').write('ran')"])
    monkeypatch.delenv("INDB_ALERT_COMMANDS", raising=False)
    _day(db, 1, 2.0)
    with pytest.warns(UserWarning, match="INDB_ALERT_COMMANDS"):
        db.run_monitor("m")
    assert not out.exists()
    monkeypatch.setenv("INDB_ALERT_COMMANDS", sys.executable)
    db.run_monitor("m")  # the pending alerts go out once allowed
    assert out.read_text() == "ran"


def test_notify_sink_reaches_a_listener(db):
    if not db.backend.supports_notify:
        with pytest.raises(indb.IndbError, match="no NOTIFY"):
            _monitor(db)
            db.add_alert_sink("m", "notify", "indb_alerts")
        return
    import psycopg

    _monitor(db)
    db.add_alert_sink("m", "notify", "indb_alerts")
    with psycopg.connect(db.url, autocommit=True) as listener:
        listener.execute("LISTEN indb_alerts")
        _day(db, 1, 2.0)
        with psycopg.connect(db.url, autocommit=True) as scheduler:  # as pg_cron would
            scheduler.execute("CALL indb.run_monitor('m')")
        got = [json.loads(n.payload) for n in listener.notifies(timeout=10, stop_after=3)]
    assert {(a["feature"], a["metric"]) for a in got} == {("x", "psi"), ("x", "wasserstein"), ("x", "js")}
    assert db.alert_sinks("m").last_alert_id[0] == max(a["id"] for a in got)

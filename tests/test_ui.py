"""indb ui (issue 16) without a browser: every page over a real catalog (models, a deployment
with predictions, labels, a challenger and humility events, a monitor run, a feature set with
statistics, a training set, a retrained version, jobs with runs), the "show SQL" text giving
back the page's numbers, the token, CSRF, and the actions with their audit rows; PostgreSQL as
indb_reader for the overview and monitor pages and a refused action.

Requests go straight into the ASGI app (``Client`` below): starlette's TestClient needs an
HTTP client library indb does not depend on.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import numpy as np
import pandas as pd
import pytest

import indb
from indb.audit import os_user
from tests.conftest import NUMERIC, loan_frame
from tests.test_lifecycle_training import FEATURES, SPINE, arrive, profile
from tests.test_monitoring_accuracy import _label
from tests.test_monitoring_drift import load

DAYS = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]


# -- a client without sockets or an HTTP library ------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


class Client:
    """Requests straight into an ASGI app, keeping cookies like a browser."""

    def __init__(self, app):
        self.app, self.cookies = app, {}

    def request(self, method: str, url: str, *, form: dict | None = None, headers: dict | None = None):
        parts = urlsplit(url)
        body = urlencode(form).encode() if form is not None else b""
        head = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if self.cookies:
            head.append((b"cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()))
        if form is not None:
            head.append((b"content-type", b"application/x-www-form-urlencoded"))
        head.append((b"host", b"testserver"))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": head,
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        delivered = []

        async def receive():
            if not delivered:
                delivered.append(True)
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # connected until the response ends

        start, chunks = {}, []

        async def send(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        # A thread of its own: Playwright's sync API keeps an event loop running in this one.
        failure = []

        def call():
            try:
                asyncio.run(self.app(scope, receive, send))
            except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
                failure.append(e)

        worker = threading.Thread(target=call)
        worker.start()
        worker.join()
        if failure:
            raise failure[0]
        headers = [(k.decode().lower(), v.decode()) for k, v in start.get("headers", [])]
        for name, value in headers:
            if name == "set-cookie":
                cookie = SimpleCookie()
                cookie.load(value)
                self.cookies.update({k: m.value for k, m in cookie.items()})
        return Reply(start["status"], headers, b"".join(chunks).decode())

    def get(self, url: str, **kw) -> Reply:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw) -> Reply:
        return self.request("POST", url, **kw)


# -- the catalog --------------------------------------------------------------------------------
def build_catalog(db, *, small: bool = False) -> None:
    """Two models on two deployments. ``loans``: v1 champion with v2 as a shadow challenger,
    four days of requests (incomes shift on days 3-4), labels, a humility rule, a monitor run,
    a comparison, an open stage request. ``risk``: scored from the feature set ``profile``,
    trained on the training set ``risk_train``, retrained once (leaderboard, lineage). Jobs:
    ``nightly`` (succeeded) and ``broken`` (failed)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    loans = loan_frame(2000)
    first = make_pipeline(StandardScaler(), LogisticRegression()).fit(loans[NUMERIC], loans.label)
    second = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(
        loans[NUMERIC].iloc[:300], loans.label.iloc[:300]
    )
    db.register_model("loans", first, sample=loans[NUMERIC], metrics={"auc": 0.81})
    db.register_model("loans", second, sample=loans[NUMERIC])
    db.deploy("loans", table="requests", version=1)
    db.add_challenger("requests", 2, mode="shadow")
    db.add_humility_rule("requests", "young", "outside_range", "age", low=21, high=80)
    rows = 150 if small else 300
    truth = []
    for day, date in enumerate(DAYS):
        frame = loan_frame(rows, seed=10 + day)
        if day >= 2:
            frame["income"] += 25_000
        load(db, frame[NUMERIC], date)
        truth.append(frame.label.to_numpy())
    ids = db.sql("SELECT id FROM requests ORDER BY id").id.to_numpy()
    _label(db, "requests", ids, np.concatenate(truth), None)
    db.create_monitor("loans_drift", "requests", reference=(DAYS[0], DAYS[2]), window="1 day")
    db.run_monitor("loans_drift")
    db.evaluate_challengers("requests")
    alice = None if db.backend.enforces_roles else "alice"  # PostgreSQL: whoever logged in
    db.request_promotion("loans", 2, "staging", "better on the shadow comparison", as_user=alice)
    db.schedule("nightly", "@daily", "run_monitor", monitor="loans_drift")
    db.run_job("nightly")
    db.schedule("broken", "@daily", "sql", statement="SELECT * FROM no_such_table")
    db.run_job("broken")
    owner = db.backend.user if db.backend.enforces_roles else "credit_team"  # PostgreSQL: a role
    db.add_owner("model", "loans", owner)
    db.comment("monitor", "loans_drift", "incomes jumped on March 3rd: a new partner bank")
    if small:
        return
    from sklearn.linear_model import LinearRegression

    db.register_model("loss", LinearRegression().fit(loans[NUMERIC], loans.loss), sample=loans[NUMERIC])
    db.deploy("loss", table="losses")
    load(db, loan_frame(50, seed=20)[NUMERIC], DAYS[0], table="losses")
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("profile", "customer", source=profile(), event_time="ts", description="who applies")
    empty = pd.DataFrame(
        {"customer_id": pd.Series([], dtype="int64"), "applied_at": pd.Series([], dtype="datetime64[us]")}
    )
    db.write_table("risk_requests", empty, replace=True)
    people = profile()
    start = LogisticRegression().fit(people[FEATURES], np.where(people.income > 50, "good", "bad"))
    db.register_model("risk", start, sample=people[FEATURES])
    db.deploy("risk", table="risk_requests", features_from="profile")
    arrive(db, 0, 300)
    training = db.training_set(
        SPINE, [f"profile:{f}" for f in FEATURES], label="label", materialize=True, name="risk_train"
    )
    fitted = training.df()
    db.register_model(
        "risk",
        LogisticRegression().fit(fitted[FEATURES], fitted.label),
        sample=fitted[FEATURES],
        training_set=training,
    )
    db.create_retraining("risk", training_set="risk_train", holdout="20%", metric="accuracy")
    arrive(db, 1, 200)
    assert db.retrain("risk").status == "succeeded"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    """A DuckDB file with the whole catalog, built once; tests get a copy (``ui_db``)."""
    folder = tmp_path_factory.mktemp("ui_catalog")
    url = f"duckdb://{folder}/catalog.duckdb"
    with indb.connect(url) as db:
        build_catalog(db)
    return str(folder / "catalog.duckdb")


@pytest.fixture
def ui_url(catalog, tmp_path) -> str:
    target = tmp_path / "ui.duckdb"
    shutil.copy(catalog, target)
    return f"duckdb://{target}"


@pytest.fixture
def app(ui_url):
    from indb.ui import create_app

    application = create_app(ui_url)
    yield application
    application.state.ui.db.close()


@pytest.fixture
def client(app) -> Client:
    return Client(app)


# -- reading pages back -------------------------------------------------------------------------
def tables(page: str) -> dict[str, pd.DataFrame]:
    """Each ``<table data-query=...>`` of a page as text cells."""
    found = {}
    for key, body in re.findall(r'<table data-query="([^"]+)">(.*?)</table>', page, re.S):
        head = [html.unescape(h) for h in re.findall(r"<th scope=\"col\">(.*?)</th>", body)]
        rows = []
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("</thead>", 1)[1], re.S):
            cells = re.findall(r"<td>(.*?)</td>", row, re.S)
            rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
        found[key] = pd.DataFrame(rows, columns=head[: len(rows[0])] if rows else head)
    return found


def shown_sql(page: str, title: str) -> str:
    """The "show SQL" text under the section titled ``title``."""
    section = page.split(f">{html.escape(title)}</h2>", 1)[1]
    code = re.search(r'<details class="sql">.*?<code>(.*?)</code>', section, re.S)[1]
    return html.unescape(code)


def csrf(client: Client, page: str = "/") -> str:
    client.get(page)
    return client.cookies["indb_ui_csrf"]


# -- pages --------------------------------------------------------------------------------------
PAGES = {
    "/": ["loans", "requests", "broken", "loans_drift"],
    "/models/loans": ["Versions", "staging", "alice", "register_model"],
    "/models/risk": [
        "Leaderboard",
        "risk_train",
        "trained_on",
        "built_from",
        "Lineage graph",
        "feature set profile v1",
    ],
    "/deployments/requests": ["Predictions per hour", "<svg", "Champion against challengers", "young"],
    "/deployments/risk_requests": ["Predictions per hour", "<svg"],
    "/deployments/losses": ["Predicted value per day", "prediction per day", "<svg"],
    "/monitors": ["loans_drift"],
    "/monitors/loans_drift": ["income: psi", "threshold", "reference against the window", "<svg"],
    "/monitors/loans_drift?metric=wasserstein": ["income: wasserstein"],
    "/feature-sets": ["profile"],
    "/feature-sets/profile": ["income: histogram", "Freshness", "last_event"],
    "/jobs": ["nightly", "broken", "no_such_table"],
    "/jobs/broken": ["Runs of broken", "failed"],
    "/search?q=risk": ["risk_requests", "risk_train"],
    "/search?q=credit_team": ['href="/models/loans"'],
    "/search?q=partner bank": ['href="/monitors/loans_drift"'],
}


def test_every_page_renders_its_data(client):
    for path, expected in PAGES.items():
        reply = client.get(path)
        assert reply.status == 200, (path, reply.text[:500])
        for text in expected:
            assert text in reply.text, (path, text)
        assert "show SQL" in reply.text or path == "/search?q=", path
        assert 'rel="icon"' in reply.text
        assert "<script" not in reply.text  # nothing needs JavaScript


def test_catalog_text_is_escaped(client, app):
    app.state.ui.db.set_description("loans", '<script>alert("x")</script>')
    page = client.get("/").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page and "<script>" not in page


def test_unknown_objects_are_404_with_a_message(client):
    for path in ("/models/nope", "/deployments/nope", "/monitors/nope", "/feature-sets/nope"):
        reply = client.get(path)
        assert reply.status == 404 and "nope" in reply.text, path
    assert client.get("/models/Bad;Name").status == 404
    assert client.get("/favicon.ico").status == 200
    assert client.get("/static/ui.css").status == 200


def test_show_sql_returns_the_numbers_the_page_shows(client, ui_url, app):
    db = app.state.ui.db
    page = client.get("/deployments/requests").text
    hourly = tables(page)["requests"]
    rerun = db.sql(shown_sql(page, "Predictions per hour"))
    assert [int(v) for v in hourly.predictions] == rerun.predictions.astype(int).tolist()
    assert sum(int(v) for v in hourly.predictions) == 4 * 300  # served rows only, not the shadow's
    assert "$" not in shown_sql(page, "Predictions per hour")  # values are literals

    page = client.get("/monitors/loans_drift").text
    drift = tables(page)["drift"]
    rerun = db.sql(shown_sql(page, "psi per column and window"))
    assert len(drift) == len(rerun) > 0
    assert np.allclose([float(v) for v in drift.value], rerun.value.to_numpy(float), rtol=1e-5)
    income = rerun[rerun.feature == "income"].sort_values("window_start")
    assert income.value.iloc[-1] > income.threshold.iloc[-1] > income.value.iloc[0]  # the shift

    page = client.get("/").text
    counts = db.sql(shown_sql(page, "At a glance")).iloc[0]
    for label, column in (
        ("models", "models"),
        ("open alerts", "open_alerts"),
        ("failing jobs", "failing_jobs"),
    ):
        assert f"<strong>{int(counts[column])}</strong> {label}" in page
    assert int(counts.models) == 3 and int(counts.failing_jobs) == 1
    alerts = tables(page)["alerts"]
    rerun = db.sql(shown_sql(page, "Open alerts"))
    assert sorted(int(v) for v in alerts.id) == sorted(rerun.id.astype(int))


def test_shown_sql_renders_values_as_literals_with_sqlglot():
    from indb.ui.queries import literal_sql

    text = "SELECT * FROM t WHERE a = $name AND b >= $since AND c < $n AND d IS $flag"
    shown = literal_sql(
        text,
        {"name": "O'Brien; DROP TABLE t", "since": pd.Timestamp("2024-03-01 10:00"), "n": 5, "flag": None},
        "duckdb",
    )
    assert "'O''Brien; DROP TABLE t'" in shown
    assert "CAST('2024-03-01 10:00:00' AS TIMESTAMP)" in shown
    assert "c < 5" in shown and "d IS NULL" in shown
    assert "CAST('2024-03-01 10:00:00' AS TIMESTAMP)" in literal_sql(
        text, {"since": pd.Timestamp("2024-03-01 10:00")}, "postgres"
    )


def test_deployment_pages_read_aggregates_only():
    """Every statement on a deployment's own tables groups or aggregates: no page reads rows."""
    from indb.sql import statements

    for name, (text, _) in statements("ui").items():
        if "{predictions}" in text or "{view}" in text or "{history}" in text:
            assert re.search(r"\b(count|max|avg|GROUP BY)\b", text, re.I), name


# -- token --------------------------------------------------------------------------------------
def test_token_is_needed_on_every_request(ui_url):
    from indb.ui import create_app

    app = create_app(ui_url, "s3cret-token")
    try:
        anonymous = Client(app)
        for path in ("/", "/models/loans", "/static/ui.css", "/favicon.ico"):
            assert anonymous.get(path).status == 401, path
        assert anonymous.get("/?token=wrong").status == 401
        assert anonymous.get("/", headers={"Authorization": "Bearer wrong"}).status == 401
        assert anonymous.post("/jobs/nightly/run", form={}).status == 401
        assert anonymous.get("/", headers={"Authorization": "Bearer s3cret-token"}).status == 200
        browser = Client(app)
        first = browser.get("/monitors/loans_drift?token=s3cret-token&metric=js")
        assert first.status == 303 and first.header("location") == ["/monitors/loans_drift?metric=js"]
        assert any("HttpOnly" in c and "SameSite=strict" in c for c in first.header("set-cookie"))
        assert browser.get("/monitors/loans_drift?metric=js").status == 200
        assert "s3cret-token" not in browser.cookies["indb_ui_token"]  # a digest, not the token
        forged = Client(app)
        forged.cookies["indb_ui_token"] = "s3cret-token"
        assert forged.get("/").status == 401
    finally:
        app.state.ui.db.close()


def test_listening_beyond_loopback_needs_a_token(ui_url):
    from indb.cli import main
    from indb.ui import check_binding

    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", "token")
    with pytest.raises(indb.IndbError, match="without a token"):
        check_binding("0.0.0.0", None)
    with pytest.raises(indb.IndbError, match="without a token"):
        check_binding("example.org", None)
    assert main(["ui", "--db", ui_url, "--host", "0.0.0.0"]) == 1


def test_links_carry_the_root_path(ui_url):
    from indb.ui import create_app

    app = create_app(ui_url, root_path="/indb/")
    try:
        page = Client(app).get("/").text
        assert 'href="/indb/models/loans"' in page and 'href="/indb/static/ui.css"' in page
    finally:
        app.state.ui.db.close()


# -- actions ------------------------------------------------------------------------------------
def _audit(db, action: str) -> pd.DataFrame:
    return db.sql("SELECT actor, object, details FROM indb.audit_log WHERE action = $a", {"a": action})


def test_acknowledge_and_resolve_an_alert_audited_with_the_user(client, app):
    db = app.state.ui.db
    alert = int(db.sql("SELECT min(id) AS id FROM indb.alerts WHERE status = 'open'").id[0])
    token = csrf(client)
    reply = client.post(f"/alerts/{alert}/acknowledge", form={"csrf": token, "note": "looking", "back": "/"})
    assert reply.status == 200 and f"alert {alert} acknowledged by {os_user()}" in reply.text
    row = db.sql("SELECT status, acknowledged_by, note FROM indb.alerts WHERE id = $id", {"id": alert})
    assert row.values.tolist() == [["acknowledged", os_user(), "looking"]]
    assert os_user() in set(_audit(db, "acknowledge_alert").actor)
    assert client.post(f"/alerts/{alert}/resolve", form={"csrf": token}).status == 200
    assert db.sql("SELECT status FROM indb.alerts WHERE id = $id", {"id": alert}).status[0] == "resolved"
    again = client.post(f"/alerts/{alert}/resolve", form={"csrf": token})
    assert again.status == 409 and "already resolved" in again.text


def test_actions_need_the_csrf_token(client, app):
    db = app.state.ui.db
    alert = int(db.sql("SELECT min(id) AS id FROM indb.alerts WHERE status = 'open'").id[0])
    csrf(client)
    for form in ({}, {"csrf": "forged"}):
        reply = client.post(f"/alerts/{alert}/acknowledge", form=form)
        assert reply.status == 403 and "CSRF" in reply.text
    assert db.sql("SELECT status FROM indb.alerts WHERE id = $id", {"id": alert}).status[0] == "open"
    runs = int(db.sql("SELECT count(*) AS n FROM indb.job_runs").n[0])
    assert client.post("/jobs/nightly/run", form={"csrf": "forged"}).status == 403
    assert int(db.sql("SELECT count(*) AS n FROM indb.job_runs").n[0]) == runs


def test_run_a_job_now(client, app):
    db = app.state.ui.db
    before = int(db.sql("SELECT count(*) AS n FROM indb.job_runs WHERE job = 'nightly'").n[0])
    reply = client.post("/jobs/nightly/run", form={"csrf": csrf(client, "/jobs"), "back": "/jobs"})
    assert reply.status == 200 and "job nightly ran now" in reply.text and 'href="/jobs"' in reply.text
    runs = db.sql("SELECT status, reason FROM indb.job_runs WHERE job = 'nightly' ORDER BY id")
    assert len(runs) == before + 1 and runs.iloc[-1].tolist() == ["succeeded", "manual"]
    audited = _audit(db, "run_job_now")
    assert audited.actor.tolist() == [os_user()] and audited.object.tolist() == ["nightly"]
    assert client.post("/jobs/nope/run", form={"csrf": csrf(client)}).status == 404


def test_approve_and_reject_stage_requests(client, app):
    db = app.state.ui.db
    (request_id,) = db.sql("SELECT id FROM indb.stage_requests WHERE status = 'open'").id.astype(int)
    page = client.get("/models/loans").text
    assert f'action="/stage-requests/{request_id}/approve"' in page
    reply = client.post(f"/stage-requests/{request_id}/approve", form={"csrf": csrf(client), "comment": "ok"})
    assert reply.status == 200 and "approved by" in reply.text and "it is now done" in reply.text
    assert (
        db.sql("SELECT stage FROM indb.model_versions WHERE model = 'loans' AND version = 2").stage[0]
        == "staging"
    )
    other = db.request_promotion("loans", 1, "production", as_user="alice")
    reply = client.post(f"/stage-requests/{other}/reject", form={"csrf": csrf(client)})
    assert reply.status == 200 and "rejected" in reply.text
    status = db.sql("SELECT status FROM indb.stage_requests WHERE id = $id", {"id": other}).status[0]
    assert status == "rejected"


def test_a_read_only_ui_refuses_every_action(ui_url):
    from indb.ui import create_app

    app = create_app(ui_url, actions=False)
    try:
        client = Client(app)
        assert "Acknowledge" not in client.get("/").text and "Run now" not in client.get("/jobs").text
        reply = client.post("/jobs/nightly/run", form={"csrf": csrf(client)})
        assert reply.status == 403 and "read-only" in reply.text
    finally:
        app.state.ui.db.close()


# -- PostgreSQL, as indb_reader -----------------------------------------------------------------
@pytest.fixture
def pg_catalog(db):
    build_catalog(db, small=True)
    return db


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_postgres_reader_sees_overview_and_monitor_and_may_not_act(pg_catalog):
    from indb.ui import create_app
    from tests.test_trust_postgres import login_role

    db = pg_catalog
    alert = int(db.sql("SELECT min(id) AS id FROM indb.alerts WHERE status = 'open'").id[0])
    (request_id,) = db.sql("SELECT id FROM indb.stage_requests WHERE status = 'open'").id.astype(int)
    with login_role(db, "indb_reader") as (name, url):
        app = create_app(url)
        try:
            client = Client(app)
            overview = client.get("/")
            assert overview.status == 200 and f"as <strong>{name}</strong>" in overview.text
            assert "loans_drift" in overview.text and "broken" in overview.text
            monitor = client.get("/monitors/loans_drift")
            assert monitor.status == 200 and "income: psi" in monitor.text
            drift = tables(monitor.text)["drift"]
            rerun = db.sql(shown_sql(monitor.text, "psi per column and window"))
            assert np.allclose([float(v) for v in drift.value], rerun.value.to_numpy(float), rtol=1e-5)
            for path in ("/deployments/requests", "/models/loans", "/jobs", "/monitors", "/feature-sets"):
                assert client.get(path).status == 200, path
            assert "loans_drift" in client.get("/search?q=partner").text
            # A table the role may not read: the page says so where that table's numbers were.
            db.sql("REVOKE SELECT ON requests_predictions FROM indb_reader")
            page = client.get("/deployments/requests")
            assert page.status == 200 and "permission denied for table requests_predictions" in page.text
            assert (
                '<p class="refused" role="note">Predictions: database user' in page.text and name in page.text
            )
            reply = client.post(f"/alerts/{alert}/acknowledge", form={"csrf": csrf(client)})
            assert reply.status == 403 and "refused" in reply.text and name in reply.text
            reply = client.post("/jobs/nightly/run", form={"csrf": csrf(client)})
            assert reply.status == 403 and "refused" in reply.text
            reply = client.post(f"/stage-requests/{request_id}/approve", form={"csrf": csrf(client)})
            assert reply.status == 403 and "refused" in reply.text
        finally:
            app.state.ui.db.close()
    assert db.sql("SELECT status FROM indb.alerts WHERE id = $id", {"id": alert}).status[0] == "open"
    assert (
        db.sql("SELECT status FROM indb.stage_requests WHERE id = $id", {"id": request_id}).status[0]
        == "open"
    )


def test_model_page_links_its_model_card(client):
    page = client.get("/models/loans").text
    card = client.get("/models/loans/card")
    assert 'href="/models/loans/card"' in page
    assert card.status == 200 and "loans" in card.text
    assert "'unsafe-inline'" in card.header("content-security-policy")[0]
    assert "script" not in card.header("content-security-policy")[0]
    assert client.get("/models/nothing_here/card").status == 404


def test_indb_ui_command_serves_the_pages(ui_url):
    """``indb ui`` as a process: it listens on loopback and serves the overview."""
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "indb.cli",
        "ui",
        "--db",
        ui_url,
        "--port",
        str(port),
        "--token",
        "t0ken",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline and process.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/", headers={"Authorization": "Bearer t0ken"}
                )
                body = urllib.request.urlopen(request, timeout=5).read().decode()
            except OSError:
                time.sleep(0.2)
        assert body is not None and "loans_drift" in body, (
            process.stderr.read() if process.poll() else "timeout"
        )
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        process.terminate()
        process.wait(20)

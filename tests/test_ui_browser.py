"""indb ui in headless Chromium against a real uvicorn server on a free port: every page loads
without console errors or failed requests, its charts have data points, the "show SQL" text
run against the database gives the numbers the page shows, the token is enforced, keyboard
users reach the content, and (PostgreSQL, as indb_reader) overview and monitor load and an
action is refused. A screenshot of each page at 1280x800 goes to the test artifacts."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager

import pytest

import indb
from tests.browser_fixtures import recorded_page, save_screenshot
from tests.test_ui import build_catalog

PAGES = {
    "overview": "/",
    "model": "/models/loans",
    "model_lineage": "/models/risk",
    "deployment": "/deployments/requests",
    "monitors": "/monitors",
    "monitor": "/monitors/loans_drift",
    "feature_sets": "/feature-sets",
    "feature_set": "/feature-sets/profile",
    "jobs": "/jobs",
    "search": "/search?q=loans",
    "model_card": "/models/loans/card",
}
CHARTS = {"deployment": 3, "monitor": 5, "feature_set": 2, "model_lineage": 1}  # at least as many SVGs


@contextmanager
def serving(url: str, **options):
    """indb ui on 127.0.0.1 and a free port, in a thread of this process: its base URL."""
    import uvicorn

    from indb.ui import create_app

    app = create_app(url, **options)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.ui.db.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui_browser")
    url = f"duckdb://{folder}/catalog.duckdb"
    with indb.connect(url) as db:
        build_catalog(db)
    with serving(url) as (base, app):
        yield base, app


def _numbers(page, selector: str) -> list[float]:
    return [float(t) for t in page.locator(selector).all_inner_texts()]


def _column(page, query: str, column: str) -> list[str]:
    """A column of a page's table (headers say which)."""
    table = page.locator(f'table[data-query="{query}"]').first
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    index = headers.index(column) + 1
    return [t.strip() for t in table.locator(f"tbody tr td:nth-child({index})").all_inner_texts()]


def test_every_page_loads_clean_with_its_charts(page, site):
    base, _ = site
    for name, path in PAGES.items():
        page.goto(base + path)
        assert page.locator("h1").count() == 1, name
        assert page.problems == [], (name, page.problems)
        charts = page.locator("figure.chart svg")
        assert charts.count() >= CHARTS.get(name, 0), name
        if name in CHARTS:  # data points (circles, bars) or graph nodes, each with its <title>
            marks = "figure.chart svg circle title, figure.chart svg rect title, figure.chart svg g title"
            assert page.locator(marks).count() > 5, name
        save_screenshot(page, f"ui_{name}")


def test_show_sql_gives_back_the_numbers_on_the_page(page, site):
    base, app = site
    db = app.state.ui.db
    page.goto(base + "/deployments/requests")
    section = page.locator("section", has=page.locator("h2#h-requests"))
    section.locator("details.data summary").click()  # "show data": a click, no script
    shown = [int(v) for v in _column(page, "requests", "predictions")]
    points = [int(float(t)) for t in section.locator("svg circle title").all_text_contents()]
    assert shown == points and sum(shown) == 1200
    section.locator("details.sql summary").click()
    text = section.locator("details.sql code").inner_text()
    assert db.sql(text).predictions.astype(int).tolist() == shown

    page.goto(base + "/monitors/loans_drift?metric=psi")
    section = page.locator("section", has=page.locator("h2#h-drift"))
    rerun = db.sql(section.locator("details.sql code").text_content())
    income = rerun[rerun.feature == "income"].sort_values("window_start").value.tolist()
    chart = page.locator("figure.chart svg", has=page.locator("title", has_text="income: psi"))
    points = [float(t) for t in chart.locator("circle title").all_text_contents()]
    assert points == pytest.approx(income, rel=1e-3)
    assert page.problems == []


def test_keyboard_reaches_the_content_first(page, site):
    base, _ = site
    page.goto(base + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"


def test_phone_width_and_dark_theme(browser, site):
    base, _ = site
    context = browser.new_context(viewport={"width": 390, "height": 800}, color_scheme="dark")
    try:
        tab = context.new_page()
        tab.goto(base + "/monitors/loans_drift")
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1  # wide tables and charts scroll inside their own box
        background = tab.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        save_screenshot(tab, "ui_monitor_phone_dark")
    finally:
        context.close()


def test_the_token_is_enforced(page, tmp_path, site):
    _, app = site
    copy = tmp_path / "copy.duckdb"
    app.state.ui.db.sql("CHECKPOINT")
    shutil.copy(app.state.ui.db.url.removeprefix("duckdb://"), copy)
    with serving(f"duckdb://{copy}", token="browser-token") as (base, token_app):
        # the refused request gets a page of its own: the browser reports it on the console
        # after goto returns, at times after the next page has started loading
        with recorded_page(page.context.browser) as refused:
            response = refused.goto(base + "/")
            assert response.status == 401 and "needs its token" in refused.content()
            assert f"HTTP 401: {base}/" in refused.problems
        page.goto(base + "/monitors/loans_drift?token=browser-token")
        assert page.url == base + "/monitors/loans_drift"  # the token left the address bar
        assert page.locator("figure.chart svg").count() >= 4
        page.goto(base + "/jobs")
        assert page.problems == []


# -- PostgreSQL, as indb_reader -----------------------------------------------------------------
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_postgres_reader_pages_load_and_an_action_is_refused(page, db):
    from tests.test_trust_postgres import login_role

    build_catalog(db, small=True)
    alert = int(db.sql("SELECT min(id) AS id FROM indb.alerts WHERE status = 'open'").id[0])
    with login_role(db, "indb_reader") as (name, url), serving(url) as (base, _):
        for label, path in (("pg_overview", "/"), ("pg_monitor", "/monitors/loans_drift")):
            page.goto(base + path)
            assert page.problems == [], page.problems
            assert name in page.locator("header .who").inner_text()
            save_screenshot(page, f"ui_{label}")
        assert page.locator("figure.chart svg circle").count() > 5
        page.goto(base + "/")
        page.locator(f'form[action="/alerts/{alert}/acknowledge"] button').click()
        assert "refused" in page.locator("main").inner_text()
        assert name in page.locator("main").inner_text()
        page.problems.clear()  # the refusal is a 403 page, recorded as a problem by design
    assert db.sql("SELECT status FROM indb.alerts WHERE id = $id", {"id": alert}).status[0] == "open"

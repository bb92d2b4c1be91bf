"""The browser harness itself: a page served on localhost loads, its problems are caught."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser_fixtures import save_screenshot

PAGE = b"""<!doctype html><html><head><title>harness</title><link rel="icon" href="data:,"></head><body>
<svg width="40" height="40"><circle cx="20" cy="20" r="10"></circle></svg>
<script>document.title = "ran";</script></body></html>"""
BROKEN = b"""<!doctype html><html><body><script>undefinedFunction();</script></body></html>"""


class Pages(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = {"/": PAGE, "/broken": BROKEN}.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body or b"missing")

    def log_message(self, *args):
        pass


@pytest.fixture
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_clean_page_loads_and_runs_its_script(page, site):
    page.goto(site + "/")
    assert page.title() == "ran"
    assert page.locator("svg circle").count() == 1
    assert page.problems == []
    assert save_screenshot(page, "harness").stat().st_size > 0


def test_script_errors_and_missing_pages_are_recorded(page, site):
    page.goto(site + "/broken")
    page.goto(site + "/nothing-here")
    assert any("undefinedFunction" in problem for problem in page.problems)
    assert any(problem.startswith("HTTP 404") for problem in page.problems)

"""pytest fixtures for tests that look at pages in a real headless Chromium.

Enabled for the whole suite from ``tests/conftest.py`` (``pytest_plugins``).

* ``browser`` (session): Debian's Chromium (``/usr/bin/chromium``, or ``INDB_CHROMIUM``) driven
  by Playwright, which never downloads a browser of its own. Skips when either is missing;
  with ``INDB_TEST_BROWSER_REQUIRED=1`` (set by ``.ci/run``) that skip is a failure instead.
* ``page``: a fresh page at 1280x800 that records console errors, page errors and failed
  requests in ``page.problems`` (a list of strings); assert it is empty after loading. Pages
  need an icon (``<link rel="icon" href="data:,">`` or a served one): Chromium asks for
  ``/favicon.ico`` and a 404 there is recorded too.
* ``save_screenshot(page, name)``: a PNG in ``INDB_ARTIFACTS`` (default
  ``build/artifacts/screenshots``), for people to look at; never committed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["browser", "page", "recorded_page", "save_screenshot"]

REQUIRED_ENV = "INDB_TEST_BROWSER_REQUIRED"

# Without the background-networking flags Chromium keeps calling Google's hosts, which a
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def browser_unavailable(reason: str) -> None:
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRED_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    return os.environ.get("INDB_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        browser_unavailable("no chromium: run .ci/install_browser.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def recorded_page(browser) -> Iterator[object]:
    """A fresh page at 1280x800 in a context of its own, recording its problems (see above).
    A page of its own keeps what the browser reports late about one page (a refused request's
    console line can arrive after the next navigation started) out of another page's list."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None
        ),
    )
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "requestfailed",
        lambda request: problems.append(f"request failed: {request.url} {request.failure}"),
    )
    tab.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status}: {response.url}") if response.status >= 400 else None
        ),
    )
    tab.problems = problems
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    with recorded_page(browser) as tab:
        yield tab


def save_screenshot(tab, name: str) -> Path:
    """Save what ``tab`` shows as ``<name>.png`` among the test run's artifacts."""
    folder = Path(os.environ.get("INDB_ARTIFACTS", "build/artifacts")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path

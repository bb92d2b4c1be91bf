"""The search page: the same search as ``indb search`` (models, feature sets, monitors and
jobs whose name, description, tags, owners or comments contain the text: the collaboration
statement over ``indb.catalog_objects``), and deployments by table or model name."""

from __future__ import annotations

from indb.backends.base import Backend
from indb.ui.pages import LIMIT, Page
from indb.ui.queries import run

LINKS = {
    "model": "/models/",
    "deployment": "/deployments/",
    "monitor": "/monitors/",
    "feature_set": "/feature-sets/",
    "job": "/jobs/",
}


def page(backend: Backend, text: str) -> Page:
    text = (text or "").strip()[:200]
    result = Page("Search", "search.html", extra={"q": text, "links": LINKS})
    if not text:
        return result
    found = run(backend, f"Objects matching {text!r}", "search", {"text": text}, file="collaboration")
    if not found.empty:
        found.frame = found.frame.drop(columns=[c for c in found.frame.columns if c.startswith("in_")])
    result.add("results", found)
    title = f"Deployments matching {text!r}"
    result.add("deployments", run(backend, title, "search_deployments", {"text": text, "limit": LIMIT}))
    return result

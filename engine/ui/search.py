"""The search page: objects of every kind whose name, description, tags or owners contain the
text, from ``indb.catalog_objects`` (the collaboration migration) or, in a catalog without it,
from the names and descriptions of models, deployments, monitors, feature sets and jobs."""

from __future__ import annotations

from indb.backends.base import Backend
from indb.sql import statement
from indb.ui.pages import LIMIT, Page
from indb.ui.queries import run

LINKS = {
    "model": "/models/",
    "deployment": "/deployments/",
    "monitor": "/monitors/",
    "feature_set": "/feature-sets/",
    "job": "/jobs/",
}


def available(backend: Backend) -> bool:
    return True


def _has_catalog_objects(backend: Backend) -> bool:
    ((count,),) = backend.rows(statement("ui", "has_catalog_objects", backend.dialect))
    return bool(count)


def page(backend: Backend, text: str) -> Page:
    text = (text or "").strip()[:200]
    result = Page("Search", "search.html", extra={"q": text, "links": LINKS})
    if not text:
        return result
    # "_" stays a one-character wildcard (LIKE's escape character differs between databases).
    pattern = "%" + text.lower().replace("\\", "").replace("%", "") + "%"
    name = "search_catalog" if _has_catalog_objects(backend) else "search_names"
    result.add(
        "results", run(backend, f"Objects matching {text!r}", name, {"pattern": pattern, "limit": LIMIT})
    )
    return result

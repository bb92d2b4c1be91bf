"""Owners, comments, descriptions and tags on models, feature sets, monitors and jobs, and a
search over all of them (issue 14.6).

The catalog keeps owners in ``indb.owners`` and comments in ``indb.comments``; the view
``indb.catalog_objects`` lists every object with its description, tags and owners, and is what
:func:`search` reads (SQL users query it directly).
"""

from __future__ import annotations

import pandas as pd

from indb.backends.base import Backend
from indb.errors import NotFoundError
from indb.sql import statement

KINDS = ("model", "feature_set", "monitor", "job")


def _sql(backend: Backend, name: str) -> str:
    return statement("collaboration", name, backend.dialect)


def _kind(kind: str) -> str:
    spelled = str(kind).strip().lower().replace("-", "_").replace(" ", "_")
    if spelled not in KINDS:
        raise ValueError(f"unknown object kind {kind!r}: one of {', '.join(KINDS)}")
    return spelled


def check_object(backend: Backend, kind: str, name: str) -> str:
    """``kind`` spelled as the catalog spells it, once ``name`` is known to exist."""
    kind = _kind(kind)
    known = [n for (n,) in backend.rows(_sql(backend, "object_names"), {"kind": kind})]
    if name not in known:
        raise NotFoundError(kind.replace("_", " "), name, known)
    return kind


def owners(backend: Backend, kind: str, name: str) -> pd.DataFrame:
    """The owners of one object (owner, added_by, added_at), sorted by owner."""
    kind = check_object(backend, kind, name)
    return backend.query(_sql(backend, "owners"), {"kind": kind, "name": name})


def comments(backend: Backend, kind: str, name: str) -> pd.DataFrame:
    """The comments on one object (id, version, author, body, created_at), oldest first."""
    kind = check_object(backend, kind, name)
    return backend.query(_sql(backend, "comments"), {"kind": kind, "name": name})

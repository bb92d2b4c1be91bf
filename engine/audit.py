"""The audit log: one row per change indb makes, with who made it."""

from __future__ import annotations

import json

from indb.backends.base import Backend
from indb.sql import statement


def record(backend: Backend, action: str, obj: str, details: dict | None = None) -> None:
    backend.execute(
        statement("catalog", "insert_audit", backend.dialect),
        {
            "actor": backend.user,
            "action": action,
            "object": obj,
            "details": None if details is None else json.dumps(details),
        },
    )

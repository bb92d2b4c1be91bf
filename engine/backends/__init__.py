"""Backends, chosen by URL: ``duckdb:`` (embedded, the default) and, later, ``postgresql:``."""

from __future__ import annotations

import os

from indb.backends.base import Backend
from indb.errors import IndbError

DEFAULT_URL = "duckdb://indb.duckdb"


def duckdb_path(url: str) -> str:
    """``duckdb:///abs/file.duckdb`` (absolute), ``duckdb://rel/file.duckdb`` (relative to the
    working directory), ``duckdb:///:memory:``; a bare ``*.duckdb`` path works too."""
    rest = url.removeprefix("duckdb:").removeprefix("//")
    if rest in ("/:memory:", ":memory:", ""):
        return ":memory:" if rest else "indb.duckdb"
    return rest


def open_backend(url: str | None = None) -> Backend:
    url = url or os.environ.get("INDB_URL") or DEFAULT_URL
    if url.startswith("duckdb:") or url.endswith((".duckdb", ".db")) or url == ":memory:":
        from indb.backends.duckdb import DuckDBBackend

        return DuckDBBackend(duckdb_path(url))
    if url.startswith(("postgresql:", "postgres:")):
        from indb.backends.postgres import PostgresBackend

        return PostgresBackend(url)
    raise IndbError(
        f"unknown database URL {url!r}: use duckdb:///path/file.duckdb, duckdb:///:memory: "
        "or postgresql://user@host:port/dbname"
    )

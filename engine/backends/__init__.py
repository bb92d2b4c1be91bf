"""Backends, chosen by URL: ``duckdb:`` (embedded, the default) and, later, ``postgresql:``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

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


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_ACCEPTED = (
    "duckdb:///path/file.duckdb, duckdb://relative/file.duckdb, duckdb:///:memory: "
    "or postgresql://user@host:port/dbname"
)


def open_backend(url: str | None = None, roles: Mapping[str, str] | None = None) -> Backend:
    """``roles``: names for indb's PostgreSQL roles (``indb.connect``)."""
    url = url or os.environ.get("INDB_URL") or DEFAULT_URL
    scheme = _SCHEME.match(url)
    # A scheme indb does not know (sqlite://x.db) is refused rather than read as a file path.
    if scheme and scheme[1].lower() not in ("duckdb", "postgresql", "postgres") and len(scheme[1]) > 1:
        raise IndbError(f"unknown database URL scheme {scheme[1]!r} in {url!r}: use {_ACCEPTED}")
    if url.startswith("duckdb:") or url.endswith((".duckdb", ".db")) or url == ":memory:":
        if roles:  # INDB_ROLE_* variables are left alone: one environment may serve both
            raise IndbError(
                f"roles= names PostgreSQL roles; {url!r} is a DuckDB database, which has no roles "
                "(a DuckDB file is single-user: whoever can open it may do anything): leave roles out"
            )
        from indb.backends.duckdb import DuckDBBackend

        return DuckDBBackend(duckdb_path(url))
    if url.startswith(("postgresql:", "postgres:")):
        from indb.backends.postgres import PostgresBackend

        return PostgresBackend(url, roles)
    raise IndbError(f"unknown database URL {url!r}: use {_ACCEPTED}")

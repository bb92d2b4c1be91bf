"""pytest fixtures for PostgreSQL tests, built on ``pg_server``.

Enable them for the whole suite from ``tests/conftest.py`` with

    pytest_plugins = ["tests.pg_fixtures"]

(``tests/`` is a package, so pytest puts the repo root on ``sys.path`` and this works with
both ``pytest`` and ``python -m pytest`` run from the repo root.)

* ``pg_dsn`` (session): the DSN of a superuser connection to a throwaway cluster, or of the
  server in ``INDB_TEST_PG_DSN``. Skips with instructions when there are no PostgreSQL
  binaries; with ``INDB_TEST_PG_REQUIRED=1`` (set it in CI) that skip is a failure instead.
* ``require_pg_extension(conn, name)`` and ``pg_unavailable(reason)`` (from ``pg_server``,
  re-exported here): skip, or fail as above, when the server lacks an extension.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg_server import (
    DSN_ENV,
    SKIP_REASON,
    ClusterError,
    find_pg_bin,
    pg_unavailable,
    require_pg_extension,
    start_cluster,
)

__all__ = ["pg_dsn", "pg_unavailable", "require_pg_extension"]


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.environ.get(DSN_ENV) and find_pg_bin() is None:
        pg_unavailable(SKIP_REASON)
    try:
        dsn, stop = start_cluster(tmp_path_factory.mktemp("pg"))
    except ClusterError as exc:
        pytest.fail(f"could not start the test PostgreSQL cluster: {exc}", pytrace=False)
    try:
        yield dsn
    finally:
        stop()

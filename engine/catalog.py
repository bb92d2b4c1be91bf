"""Creates or upgrades the catalog (schema ``indb``) by applying numbered migrations once."""

from __future__ import annotations

from indb.backends.base import Backend
from indb.sql import migrations, statement

CATALOG_VERSION = max(m.version for m in migrations())


def schema_version(backend: Backend) -> int:
    ((version,),) = backend.rows(statement("catalog", "schema_version", backend.dialect))
    return int(version)


def ensure(backend: Backend) -> int:
    """Apply missing migrations in one transaction; a no-op on an up-to-date catalog. Every
    unrecorded migration runs, not only those above the latest: branches merged in another
    order (004 arriving after 005) still upgrade. A role that may not install (PostgreSQL:
    not a superuser) only checks the catalog is there and current."""
    read_only = backend.read_only_catalog(CATALOG_VERSION)
    if read_only is not None:
        return read_only
    with backend.transaction():
        backend.script(statement("catalog", "bootstrap", backend.dialect))
        applied = {
            int(v) for (v,) in backend.rows(statement("catalog", "applied_migrations", backend.dialect))
        }
        for migration in migrations():
            if migration.version in applied:
                continue
            backend.script(migration.text, transpile=True)
            backend.execute(
                statement("catalog", "record_migration", backend.dialect),
                {"version": migration.version, "name": migration.name},
            )
        backend.install_runtime()
    return schema_version(backend)

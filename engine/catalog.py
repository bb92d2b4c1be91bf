"""Creates or upgrades the catalog (schema ``indb``) by applying numbered migrations once."""

from __future__ import annotations

from indb.backends.base import Backend
from indb.sql import migrations, statement

CATALOG_VERSION = max(m.version for m in migrations())


def schema_version(backend: Backend) -> int:
    ((version,),) = backend.rows(statement("catalog", "schema_version", backend.dialect))
    return int(version)


def _missing(backend: Backend) -> list:
    """Migrations not yet recorded (all of them when there is no catalog), read without DDL."""
    ((present,),) = backend.rows(statement("catalog", "has_catalog", backend.dialect))
    if not present:
        return list(migrations())
    applied = {int(v) for (v,) in backend.rows(statement("catalog", "applied_migrations", backend.dialect))}
    return [m for m in migrations() if m.version not in applied]


def ensure(backend: Backend) -> int:
    """Apply missing migrations in one transaction; on an up-to-date catalog it only reads.
    Every unrecorded migration runs, not only those above the latest: branches merged in
    another order (004 arriving after 005) still upgrade. Connections that find work to do
    take the catalog lock (PostgreSQL: an advisory lock) and look again under it, so many
    processes connecting at once install the catalog once and never collide. A role that may
    not install (PostgreSQL: not a superuser) only checks the catalog is there and current."""
    read_only = backend.read_only_catalog(CATALOG_VERSION)
    if read_only is not None:
        return read_only
    if _missing(backend):
        with backend.transaction():
            backend.lock_catalog()
            if _missing(backend):
                backend.script(statement("catalog", "bootstrap", backend.dialect))
                for migration in _missing(backend):
                    backend.script(migration.text, transpile=True)
                    backend.execute(
                        statement("catalog", "record_migration", backend.dialect),
                        {"version": migration.version, "name": migration.name},
                    )
    backend.install_runtime()
    return schema_version(backend)

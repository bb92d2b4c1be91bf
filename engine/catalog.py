"""Creates or upgrades the catalog (schema ``indb``) by applying numbered migrations once."""

from __future__ import annotations

from indb.backends.base import Backend, Check
from indb.errors import DatabaseError
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


def _unknown(backend: Backend) -> tuple[list[int], list[int]]:
    """(migrations recorded in the catalog, those among them this indb does not know)."""
    ((present,),) = backend.rows(statement("catalog", "has_catalog", backend.dialect))
    if not present:
        return [], []
    applied = sorted(
        int(v) for (v,) in backend.rows(statement("catalog", "applied_migrations", backend.dialect))
    )
    known = {m.version for m in migrations()}
    return applied, [v for v in applied if v not in known]


def _newer_message(unknown: list[int]) -> str:
    import indb

    return (
        f"indb's catalog in this database was upgraded by a newer indb: it has migration(s) "
        f"{unknown}, which this indb ({indb.__version__}, migrations up to {CATALOG_VERSION}) does "
        "not know"
    )


def _refuse_newer(backend: Backend) -> None:
    """A catalog upgraded by a newer indb is refused before anything is written: this indb
    would re-create triggers and functions the newer one changed, with its own older text."""
    _, unknown = _unknown(backend)
    if unknown:
        raise DatabaseError(
            _newer_message(unknown) + ". Nothing was changed. Connect with the indb that upgraded it "
            "(pip install --upgrade indb); an older one could undo its changes."
        )


def health(backend: Backend) -> list[Check]:
    """``indb doctor``'s line on the catalog's migrations (none when it cannot be read: the
    backend's own checks say why)."""
    try:
        applied, unknown = _unknown(backend)
    except Exception:
        return []
    if not applied:
        return [Check("catalog", True, "no indb catalog yet: the first connection installs it")]
    if unknown:
        return [
            Check(
                "catalog",
                False,
                _newer_message(unknown),
                "connect with the newer indb (pip install --upgrade indb)",
            )
        ]
    missing = {m.version for m in migrations()} - set(applied)
    detail = f"migrations up to {max(applied)} (this indb: {CATALOG_VERSION})"
    if missing:
        detail += "; the next connection of the installing user upgrades it"
    return [Check("catalog", True, detail)]


def ensure(backend: Backend) -> int:
    """Apply missing migrations in one transaction; on an up-to-date catalog it only reads.
    Every unrecorded migration runs, not only those above the latest: branches merged in
    another order (004 arriving after 005) still upgrade. Connections that find work to do
    take the catalog lock (PostgreSQL: an advisory lock) and look again under it, so many
    processes connecting at once install the catalog once and never collide. A role that may
    not install (PostgreSQL: not a superuser) only checks the catalog is there and current."""
    read_only = backend.read_only_catalog(CATALOG_VERSION)
    _refuse_newer(backend)
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

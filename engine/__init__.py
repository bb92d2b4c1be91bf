"""indb: machine learning that lives in the database.

>>> import indb
>>> db = indb.connect()                       # ./indb.duckdb, or $INDB_URL
>>> db.register_model("loans", pipeline, sample=X)
>>> db.deploy("loans", table="loan_requests")
>>> db.sql("SELECT predict_loans(income, debt, purpose) FROM applicants")
"""

from __future__ import annotations

from collections.abc import Mapping

from indb.database import Database
from indb.deployments import Deployment
from indb.errors import (
    DatabaseError,
    DeploymentError,
    IndbError,
    IntegrityError,
    InvalidNameError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    ScoringError,
)
from indb.registry import ModelVersion

__version__ = "0.1.0"

__all__ = [
    "connect",
    "Database",
    "Deployment",
    "ModelVersion",
    "IndbError",
    "DatabaseError",
    "DeploymentError",
    "IntegrityError",
    "InvalidNameError",
    "QueryError",
    "ModelError",
    "NotFoundError",
    "PermissionDeniedError",
    "ScoringError",
]


def connect(url: str | None = None, *, roles: Mapping[str, str] | None = None) -> Database:
    """Open a database and create or upgrade its catalog.

    ``url``: ``duckdb:///path/file.duckdb``, ``duckdb:///:memory:``,
    ``postgresql://user@host:port/dbname``; default ``$INDB_URL`` or ``indb.duckdb`` in the
    working directory.

    ``roles`` (PostgreSQL only): the names of indb's roles by purpose, e.g.
    ``{"app": "loan_app", "reader": "loan_reader"}`` (purposes: reader, app, developer,
    approver, admin; default ``$INDB_ROLE_<PURPOSE>``, else ``$INDB_ROLE_PREFIX<purpose>``,
    else ``indb_<purpose>``). Chosen when a superuser installs indb and recorded in
    ``indb.roles``; a later connect asking for other names is refused.
    """
    from indb.backends import open_backend

    return Database(open_backend(url, roles))

"""The audit log: one row per change indb makes, with who made it, in a hash chain.

Each row carries the hash of the row before it (``prev_hash``) and its own (``row_hash``,
over that and every field), so editing or removing a row breaks the chain at that row:
``indb audit verify`` (``verify()``) recomputes it. On PostgreSQL a trigger fills both hashes,
the id and time, and the actor (``session_user``: the role that logged in, which a client
cannot choose); UPDATE, DELETE and TRUNCATE are refused by trigger and by privilege, and
direct changes of models, model_versions, model_aliases and deployments are logged by
triggers too. On DuckDB (single user, no roles) indb computes the hashes itself and the actor
is the operating-system user running the process (from the process's uid, not $LOGNAME).
A chain without a secret detects edits made without recomputing it; keep the head hash
``verify()`` reports somewhere else to detect a rewrite by someone who holds the database file
or the superuser role.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime

from indb.backends.base import Backend
from indb.sql import statement


def os_user() -> str:
    """The user this process runs as, from its uid (environment variables can be set to anything)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # no passwd entry (containers) or no pwd module (Windows)
        import getpass

        return getpass.getuser()


def row_hash(
    prev_hash: str | None, row_id: int, logged_at: datetime, actor: str, action: str, obj: str, details
) -> str:
    """indb.audit_row_hash (sql/postgres/audit.sql): every field length-prefixed."""
    fields = [
        prev_hash or "",
        str(int(row_id)),
        logged_at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        actor,
        action,
        obj,
        details or "",
    ]
    text = "indb audit v1|" + "|".join(f"{len(f)}:{f}" for f in fields)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _server_side(backend: Backend) -> bool:
    return backend.dialect == "postgres"


def record(backend: Backend, action: str, obj: str, details: dict | None = None) -> None:
    text = None if details is None else json.dumps(details)
    if _server_side(backend):  # the chain trigger sets id, time, actor and hashes
        backend.execute(
            statement("catalog", "insert_audit", backend.dialect),
            {"actor": backend.user, "action": action, "object": obj, "details": text},
        )
        return
    ((row_id,),) = backend.rows(statement("audit_log", "next_id", backend.dialect))
    previous = backend.rows(statement("audit_log", "last_hash", backend.dialect))
    prev_hash = previous[0][0] if previous else None
    actor = os_user()
    logged_at = datetime.now().replace(tzinfo=None)
    backend.execute(
        statement("audit_log", "insert_chained", backend.dialect),
        {
            "id": int(row_id),
            "logged_at": logged_at,
            "actor": actor,
            "action": action,
            "object": obj,
            "details": text,
            "prev_hash": prev_hash,
            "row_hash": row_hash(prev_hash, row_id, logged_at, actor, action, obj, text),
        },
    )


@dataclass
class Verification:
    """What ``verify()`` found: rows checked, rows from before the chain, breaks, the head."""

    rows: int = 0
    unchained: int = 0
    head: str | None = None
    breaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def __str__(self) -> str:
        lines = [
            f"audit log: {self.rows} rows, {self.rows - self.unchained} chained"
            + (f", {self.unchained} from before the chain" if self.unchained else "")
            + (f"; head {self.head}" if self.head else "")
        ]
        lines += [f"BROKEN: {b}" for b in self.breaks]
        lines.append("chain intact" if self.ok else f"{len(self.breaks)} break(s)")
        return "\n".join(lines)


def verify(backend: Backend) -> Verification:
    """Recompute the chain: each row's hash from its fields, each prev_hash against the row
    before it. Rows without hashes are accepted only before the first chained row."""
    result = Verification()
    if _server_side(backend):
        rows = backend.rows(statement("audit", "verify_chain", backend.dialect))
        checked = [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    else:
        checked = []
        previous = None
        for row_id, logged_at, actor, action, obj, details, prev_hash, stored in backend.rows(
            statement("audit_log", "chain", backend.dialect)
        ):
            computed = None
            if stored is not None:
                computed = row_hash(prev_hash, row_id, logged_at, actor, action, obj, details)
            checked.append((row_id, prev_hash, stored, computed, previous))
            previous = stored
    started = False
    for row_id, prev_hash, stored, computed, previous in checked:
        result.rows += 1
        if stored is None:
            if started:
                result.breaks.append(f"row {row_id} has no hash (inserted around the chain)")
            else:
                result.unchained += 1
            continue
        if started and prev_hash != previous:
            result.breaks.append(f"row {row_id}: the row before it was changed or removed")
        elif not started and prev_hash is not None:
            result.breaks.append(f"row {row_id}: the rows before it were removed")
        if computed != stored:
            result.breaks.append(f"row {row_id} was changed after it was logged")
        started = True
        result.head = stored
    return result

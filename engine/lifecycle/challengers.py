"""Challengers: other versions of a deployed model scored in the same insert as the champion.

``add_challenger(table, version, mode="shadow")`` scores every inserted row with the challenger
too, into ``<table>_predictions`` with ``role = 'challenger'`` and ``served = false``: the
application keeps seeing the champion's prediction. ``mode="split"`` serves a deterministic
share ``weight`` of request ids with the challenger instead (``role = 'challenger'``,
``served = true``; the champion does not score those rows): an id's arm is decided by
:func:`bucket`, an integer hash of the id that every backend computes the same way, so the same
ids land in the same arm on DuckDB and PostgreSQL.

Adding or removing a challenger is a switch: it redeploys the champion with the new set of
challengers (:func:`indb.deployments.deploy`), under the deployment's lock and in one
transaction with the ``indb.challengers`` rows, so every insert is scored either before or
after it, never half.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from indb import identifiers, registry
from indb.backends.base import Backend
from indb.errors import DeploymentError, NotFoundError
from indb.sql import statement

MODES = ("shadow", "split")
BUCKETS = 10_000  # a split weight is a whole number of buckets: weights to 1e-4
_PRIME = 2_147_483_647  # 2^31 - 1: every product below stays under 2^63
_MULTIPLIER = 48_271


def bucket(request_id: int) -> int:
    """The arm bucket (0 <= b < 10000) of a request id, as :func:`bucket_tree` computes it in
    SQL: a Lehmer step, then a square to break its linearity. Every intermediate stays below
    2^63, and ``%`` keeps the sign of the dividend in DuckDB and PostgreSQL alike (made
    non-negative first), so Python, DuckDB and PostgreSQL agree on every BIGINT id."""
    request_id = int(request_id)
    truncated = abs(request_id) % _PRIME * (-1 if request_id < 0 else 1)  # SQL's sign rule
    x = (truncated + _PRIME) % _PRIME
    a = (x * _MULTIPLIER) % _PRIME
    return ((a * a + x) % _PRIME) % BUCKETS


def bucket_tree(column: exp.Expression) -> exp.Expression:
    """:func:`bucket` over ``column`` as a sqlglot tree (integer arithmetic only)."""

    def num(n: int) -> exp.Literal:
        return exp.Literal.number(n)

    def mod(a: exp.Expression, b: int) -> exp.Expression:
        return exp.Paren(this=exp.Mod(this=exp.Paren(this=a), expression=num(b)))

    key = exp.cast(column, exp.DataType.build("BIGINT"))
    x = mod(exp.Add(this=mod(key, _PRIME), expression=num(_PRIME)), _PRIME)
    a = mod(exp.Mul(this=x, expression=num(_MULTIPLIER)), _PRIME)
    square = exp.Paren(this=exp.Mul(this=a, expression=a.copy()))
    mixed = mod(exp.Add(this=square, expression=x.copy()), _PRIME)
    return mod(mixed, BUCKETS)


def in_ranges(column: exp.Expression, ranges) -> exp.Expression:
    """True when ``column``'s bucket lies in one of ``ranges`` ((low, high) pairs)."""
    b = bucket_tree(column)
    parts = [
        exp.and_(
            exp.GTE(this=b.copy(), expression=exp.Literal.number(int(lo))),
            exp.LT(this=b.copy(), expression=exp.Literal.number(int(hi))),
        )
        for lo, hi in ranges
    ]
    return exp.or_(*parts) if parts else exp.false()


@dataclass(frozen=True)
class Challenger:
    """One row of ``indb.challengers``."""

    deployment: str
    model: str
    version: int
    mode: str
    weight: float
    runtime: str
    bucket_low: int | None = None
    bucket_high: int | None = None

    @property
    def buckets(self) -> tuple[int, int] | None:
        if self.mode != "split":
            return None
        return (int(self.bucket_low), int(self.bucket_high))


def listed(backend: Backend, table: str) -> list[Challenger]:
    """The challengers of a deployment, oldest first."""
    rows = backend.rows(statement("challengers", "list_challengers", backend.dialect), {"deployment": table})
    return [Challenger(r[0], r[1], int(r[2]), r[3], float(r[4]), r[5], r[6], r[7]) for r in rows]


def _free_range(taken: list[tuple[int, int]], width: int) -> tuple[int, int] | None:
    """The first gap of ``width`` buckets not in ``taken``: ranges of challengers that stay keep
    their ids when others come and go."""
    start = 0
    for lo, hi in sorted(taken):
        if lo - start >= width:
            return (start, start + width)
        start = max(start, hi)
    return (start, start + width) if BUCKETS - start >= width else None


def add(
    backend: Backend,
    table: str,
    version: int,
    *,
    mode: str = "shadow",
    weight: float = 0.1,
    runtime: str = "auto",
    dry_run: bool = False,
):
    """Score inserts into ``table`` with ``version`` of its model as well (see the module)."""
    from indb import deployments

    table = identifiers.table_name(table)
    current = deployments.get(backend, table)
    if mode not in MODES:
        raise DeploymentError(f"challenger mode {mode!r} is not one of {', '.join(MODES)}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise DeploymentError(
            f"challenger version must be a version number of {current.model!r}, got {version!r}"
        )
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < float(weight) <= 1:
        raise DeploymentError(f"challenger weight must be a number in (0, 1], got {weight!r}")
    if runtime not in deployments.RUNTIMES:
        raise DeploymentError(f"runtime {runtime!r} is not one of {', '.join(deployments.RUNTIMES)}")
    if version == current.version:
        raise DeploymentError(
            f"version {version} of {current.model!r} is the champion of {table!r}; a challenger must "
            "be another version"
        )
    registry.get(backend, current.model, version, with_bytes=False)  # NotFoundError names the known
    existing = listed(backend, table)
    if any(c.version == version for c in existing):
        raise DeploymentError(
            f"version {version} is a challenger of {table!r} already; remove it first to change it"
        )
    low = high = None
    if mode == "split":
        width = round(float(weight) * BUCKETS)
        if width < 1:
            raise DeploymentError(f"split weight {weight!r} is below 1/{BUCKETS}, the smallest share")
        taken = [c.buckets for c in existing if c.buckets]
        total = sum(c.weight for c in existing if c.mode == "split") + float(weight)
        found = _free_range(taken, width) if total <= 1 + 1e-9 else None
        if found is None:
            raise DeploymentError(
                f"split challengers of {table!r} would serve {total:g} of the requests; the weights of "
                "a deployment's split challengers must add up to at most 1"
            )
        low, high = found
    new = Challenger(table, current.model, version, mode, float(weight), runtime, low, high)
    return _redeploy(backend, current, [*existing, new], f"add {mode} challenger v{version}", dry_run)


def remove(backend: Backend, table: str, version: int, *, dry_run: bool = False):
    """Stop scoring inserts into ``table`` with challenger ``version``."""
    from indb import deployments

    table = identifiers.table_name(table)
    current = deployments.get(backend, table)
    existing = listed(backend, table)
    if not any(c.version == version for c in existing):
        raise NotFoundError(f"challenger of {table}", f"v{version}", [f"v{c.version}" for c in existing])
    kept = [c for c in existing if c.version != version]
    return _redeploy(backend, current, kept, f"remove challenger v{version}", dry_run)


def _redeploy(backend: Backend, current, challengers: list[Challenger], reason: str, dry_run: bool):
    """The champion deployed again, as it is, with these challengers: the switch that adds or
    removes one (under the deployment's lock)."""
    from indb import deployments

    return deployments.deploy(
        backend,
        current.model,
        table=current.table,
        version=current.version,
        runtime=current.runtime,
        mode=current.mode,
        dry_run=dry_run,
        challengers=challengers,
        reason=reason,
    )


def write(backend: Backend, table: str, chosen: list[tuple[Challenger, str, str | None]]) -> None:
    """Make the challenger rows of ``table`` these (inside the switch's transaction), each with
    the runtime it scores with and the content hash the triggers check; rows that stay keep
    their added_at and added_by."""
    keep = [c.version for c, _, _ in chosen]
    backend.execute(
        statement("challengers", "delete_other_challengers", backend.dialect),
        {"deployment": table, "versions": keep},
    )
    for challenger, runtime, content_hash in chosen:
        backend.execute(
            statement("challengers", "insert_challenger", backend.dialect),
            {
                "deployment": table,
                "model": challenger.model,
                "version": challenger.version,
                "mode": challenger.mode,
                "weight": challenger.weight,
                "runtime": runtime,
                "content_hash": content_hash,
                "bucket_low": challenger.bucket_low,
                "bucket_high": challenger.bucket_high,
                "added_by": backend.user,
            },
        )


def record_history(
    backend: Backend,
    table: str,
    model: str,
    version: int,
    runtime: str,
    reason: str,
    evidence: str | None = None,
) -> None:
    """A row of ``indb.deployment_history``: the deployment's champion from now on."""
    backend.execute(
        statement("challengers", "insert_history", backend.dialect),
        {
            "deployment": table,
            "model": model,
            "version": version,
            "runtime": runtime,
            "switched_by": backend.user,
            "reason": reason,
            "evidence": evidence,
        },
    )

"""The names of indb's PostgreSQL roles: chosen at install, recorded in ``indb.roles``.

indb grants by purpose: ``reader``, ``app``, ``developer``, ``approver``, ``admin``. The role
each purpose is granted to is named when indb is installed (the first superuser connect):
``indb.connect(url, roles={"app": "loan_app"})``, else ``INDB_ROLE_APP=loan_app``, else
``INDB_ROLE_PREFIX=acme_`` (``acme_app``), else ``indb_app``. The install records the five
names in ``indb.roles``; from then on every grant (sql/postgres/privileges.sql, each deploy's
``indb.grant_deployment``, the event trigger's ``indb.grant_function``), every hint and
``indb doctor`` use the recorded names, and a connect that asks for other names is refused
rather than granting to them too. The names are repeated in the schema's comment, which any
role may read: a role without access to the catalog is still told which role to ask for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from indb.errors import InvalidNameError
from indb.identifiers import role_name

PURPOSES = ("reader", "app", "developer", "approver", "admin")
DEFAULTS = {purpose: f"indb_{purpose}" for purpose in PURPOSES}
ENV = "INDB_ROLE_"
PREFIX_ENV = ENV + "PREFIX"
_IN_COMMENT = re.compile(r"\broles((?: [a-z]+=[a-z0-9_]+)+)")


def requested(roles: Mapping[str, str] | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The names asked for explicitly, checked: ``roles`` over ``INDB_ROLE_<PURPOSE>`` over
    ``INDB_ROLE_PREFIX``. Purposes not asked for are absent (they take the default or the
    installed name)."""
    wanted = {
        key.removeprefix(ENV).lower(): value
        for key, value in environ.items()
        if key.startswith(ENV) and key != PREFIX_ENV
    }
    _known(wanted, "environment variable " + ENV + "{}", upper=True)
    prefix = environ.get(PREFIX_ENV)
    if prefix:
        wanted = {purpose: prefix + purpose for purpose in PURPOSES} | wanted
    if roles is not None:
        if not isinstance(roles, Mapping):
            raise InvalidNameError(
                f"roles must map purposes ({', '.join(PURPOSES)}) to role names, got {type(roles).__name__}"
            )
        _known(roles, "roles key {!r}")
        wanted |= dict(roles)
    checked = {purpose: role_name(name, purpose) for purpose, name in wanted.items()}
    distinct(DEFAULTS | checked)
    return checked


def _known(keys, what: str, upper: bool = False) -> None:
    for key in keys:
        if key not in PURPOSES:
            close = difflib.get_close_matches(key, PURPOSES, n=1)
            shown = key.upper() if upper else key
            hint = f"; did you mean {(close[0].upper() if upper else close[0])!r}?" if close else ""
            raise InvalidNameError(
                f"{what.format(shown)} names no role of indb (purposes: {', '.join(PURPOSES)}){hint}"
            )


def distinct(names: Mapping[str, str]) -> None:
    """Five purposes, five roles: one role for two purposes would merge what they may do."""
    seen: dict[str, str] = {}
    for purpose, name in names.items():
        if name in seen:
            raise InvalidNameError(
                f"role {name!r} is named for both {seen[name]} and {purpose}: each purpose needs its own role"
            )
        seen[name] = purpose


def check_same(wanted: Mapping[str, str], installed: Mapping[str, str], how: str) -> None:
    """Refuse names that differ from those the catalog was installed with (``how`` says
    where those came from): indb never grants to a second set of roles."""
    differ = {p: n for p, n in wanted.items() if installed.get(p) != n}
    if differ:
        asked = ", ".join(f"{p}={n}" for p, n in differ.items())
        have = ", ".join(f"{p}={installed.get(p)}" for p in differ)
        raise InvalidNameError(
            f"indb's roles in this database are {have} ({how}), not {asked} as asked "
            f"(roles= or {ENV}* environment variables): connect without them, or with the "
            "installed names. Names are fixed at install; to rename one, as a superuser: "
            "ALTER ROLE <old> RENAME TO <new>; UPDATE indb.roles SET role_name = '<new>' "
            "WHERE purpose = '<purpose>'; (README, Security)"
        )


def comment_fragment(names: Mapping[str, str]) -> str:
    return "roles " + " ".join(f"{p}={names[p]}" for p in PURPOSES)


def from_comment(comment: str | None) -> dict[str, str]:
    """The names the schema's comment repeats ({} when it has none or they do not check)."""
    match = _IN_COMMENT.search(comment or "")
    if not match:
        return {}
    names = dict(pair.split("=", 1) for pair in match[1].split())
    try:
        return {p: role_name(names[p], p) for p in PURPOSES}
    except (KeyError, InvalidNameError):
        return {}

"""Owners, comments, descriptions and tags on models, feature sets, monitors and jobs, and a
search over all of them (issue 14.6).

The catalog keeps owners in ``indb.owners`` and comments in ``indb.comments``; the view
``indb.catalog_objects`` lists every object with its description, tags and owners, and is what
:func:`search` reads (SQL users query it directly).

On a backend that enforces roles (PostgreSQL) owners and comments are written only by the
server's SECURITY DEFINER functions (sql/postgres/collaboration.sql), which record
``session_user``: the author of a comment cannot be forged, and only admins, an object's
owners and (while it has none) its creator change its owners. Descriptions and tags are
plain UPDATEs there, allowed by the developer role's privileges. Elsewhere (DuckDB: a file,
one user) this module applies the same rules and records the operating-system user; ``as_user``
names a person acting through that one account, a declaration the file cannot check. The
file's own user, undeclared, acts as its admin.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from indb import audit, registry
from indb.backends.base import Backend
from indb.errors import NotFoundError, PermissionDeniedError
from indb.sql import statement

KINDS = ("model", "feature_set", "monitor", "job")
VERSIONED = ("model", "feature_set")
_UNSET: Any = object()
_MATCHES = ("name", "description", "tags", "owners", "comments")


def _sql(backend: Backend, name: str) -> str:
    return statement("collaboration", name, backend.dialect)


def _kind(kind: str) -> str:
    spelled = str(kind).strip().lower().replace("-", "_")
    if spelled not in KINDS:
        raise ValueError(f"unknown object kind {kind!r}: one of {', '.join(KINDS)}")
    return spelled


def _label(kind: str, name: str) -> str:
    return f"{kind.replace('_', ' ')} {name!r}"


def check_object(backend: Backend, kind: str, name: str) -> str:
    """``kind`` spelled as the catalog spells it, once ``name`` is known to exist."""
    kind = _kind(kind)
    known = [n for (n,) in backend.rows(_sql(backend, "object_names"), {"kind": kind})]
    if name not in known:
        raise NotFoundError(kind.replace("_", " "), name, known)
    return kind


def forget_statements(backend: Backend, kind: str, name: str) -> list[tuple[str, dict]]:
    """The statements that drop an object's owners and comments with the object (run in the
    drop's transaction). None where the server's own trigger does it (PostgreSQL)."""
    if backend.enforces_roles:
        return []
    params = {"kind": _kind(kind), "name": name}
    return [(_sql(backend, "forget_owners"), params), (_sql(backend, "forget_comments"), params)]


def _server(backend: Backend, as_user: str | None) -> bool:
    if backend.enforces_roles and as_user is not None:
        raise ValueError(
            "as_user is for single-user databases: here the server acts as the role that logged in"
        )
    return backend.enforces_roles


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be non-empty text, got {value!r}")
    return value


def _owner(value) -> str:
    owner = _text(value, "owner")
    if len(owner) > 128 or owner != owner.strip() or any(ord(c) < 32 for c in owner):
        raise ValueError(
            f"owner {owner!r}: a user or role name, at most 128 characters, no surrounding spaces"
        )
    return owner


# -- reading ---------------------------------------------------------------------------------
def owners(backend: Backend, kind: str, name: str) -> pd.DataFrame:
    """The owners of one object (owner, added_by, added_at), sorted by owner."""
    kind = check_object(backend, kind, name)
    return backend.query(_sql(backend, "owners"), {"kind": kind, "name": name})


def comments(backend: Backend, kind: str, name: str) -> pd.DataFrame:
    """The comments on one object (id, version, author, body, created_at), oldest first."""
    kind = check_object(backend, kind, name)
    return backend.query(_sql(backend, "comments"), {"kind": kind, "name": name})


def catalog_object(backend: Backend, kind: str, name: str) -> dict:
    """One row of ``indb.catalog_objects``: kind, name, description, tags (a dict), owners."""
    kind = check_object(backend, kind, name)
    ((found_kind, found_name, description, tags, owner_list),) = backend.rows(
        _sql(backend, "object"), {"kind": kind, "name": name}
    )
    return {
        "object_kind": found_kind,
        "object_name": found_name,
        "description": description,
        "tags": json.loads(tags) if tags else {},
        "owners": owner_list,
    }


def search(backend: Backend, text: str) -> pd.DataFrame:
    """Objects whose name, description, tags, owners or comments contain ``text`` (any case;
    every character plain, ``%`` and ``_`` included): object_kind, object_name, description,
    tags, owners and matched (where the text was found)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"search text must be non-empty, got {text!r} (all objects: indb.catalog_objects)")
    found = backend.query(_sql(backend, "search"), {"text": text})
    flags = [f"in_{m}" for m in _MATCHES]
    found["matched"] = [
        ", ".join(m for m, hit in zip(_MATCHES, row, strict=True) if hit)
        for row in found[flags].itertuples(index=False, name=None)
    ]
    found["tags"] = [json.loads(t) if isinstance(t, str) and t else {} for t in found["tags"]]
    return found.drop(columns=flags).reset_index(drop=True)


# -- owners ----------------------------------------------------------------------------------
def add_owner(backend: Backend, kind: str, name: str, owner: str, *, as_user: str | None = None) -> bool:
    """Make ``owner`` (a user or a role; PostgreSQL: an existing role) an owner of the object;
    False when it already was. Admins, the object's owners and, while it has none, its
    creator may."""
    return _change_owner(backend, kind, name, owner, True, as_user)


def remove_owner(backend: Backend, kind: str, name: str, owner: str, *, as_user: str | None = None) -> None:
    """Remove ``owner`` from the object's owners (admins and the object's owners may)."""
    _change_owner(backend, kind, name, owner, False, as_user)


def _change_owner(backend: Backend, kind: str, name: str, owner: str, add: bool, as_user: str | None) -> bool:
    kind = check_object(backend, kind, name)
    owner = _owner(owner)
    params = {"kind": kind, "name": name, "owner": owner}
    if _server(backend, as_user):
        if not add:  # owners are readable by every reader: name the missing one as below
            _check_is_owner(owner, _owner_names(backend, kind, name), kind, name)
        ((changed,),) = backend.rows(_sql(backend, "add_owner" if add else "remove_owner"), params)
        return bool(changed)
    user = as_user or audit.os_user()
    with backend.transaction():
        current = _owner_names(backend, kind, name)
        if as_user is not None:
            _check_may_change_owners(backend, kind, name, user, current)
        if add and owner in current:
            return False
        if add:
            backend.execute(_sql(backend, "insert_owner"), {**params, "user": user})
        else:
            _check_is_owner(owner, current, kind, name)
            backend.execute(_sql(backend, "delete_owner"), params)
        details = {"kind": kind, "owner": owner, "as_user": user}
        audit.record(backend, "add owner" if add else "remove owner", name, details)
    return True


def _owner_names(backend: Backend, kind: str, name: str) -> list[str]:
    return [owner for (owner, _, _) in backend.rows(_sql(backend, "owners"), {"kind": kind, "name": name})]


def _check_is_owner(owner: str, current: list[str], kind: str, name: str) -> None:
    if owner not in current:
        raise NotFoundError(f"owner of {_label(kind, name)}", owner, current)


def _check_may_change_owners(backend: Backend, kind: str, name: str, user: str, current: list[str]) -> None:
    """A declared user (DuckDB) changes owners as an owner or, while there are none, as the
    object's creator (the file's own user, undeclared, is its admin)."""
    if user in current:
        return
    found = backend.rows(_sql(backend, "creator"), {"kind": kind, "name": name})
    creator = found[0][0] if found else None
    if not current and user == creator:
        return
    held = ", ".join(current) if current else f"none yet; its creator {creator} may add the first"
    raise PermissionDeniedError(
        f"{user} may not change the owners of {_label(kind, name)} (owners: {held}); its owners may"
    )


# -- comments --------------------------------------------------------------------------------
def comment(
    backend: Backend,
    kind: str,
    name: str,
    text: str,
    *,
    version: int | None = None,
    as_user: str | None = None,
) -> int:
    """Add a comment to an object (``version``: one of a model's or feature set's versions);
    its id. The author is the user who logged in (PostgreSQL: session_user, a member of the
    developer role) or the operating-system user."""
    kind = check_object(backend, kind, name)
    text = _text(text, "a comment")
    if version is not None:
        version = _version(backend, kind, name, version)
    params = {"kind": kind, "name": name, "body": text, "version": version}
    if _server(backend, as_user):
        ((comment_id,),) = backend.rows(_sql(backend, "add_comment"), params)
        return int(comment_id)
    user = as_user or audit.os_user()
    with backend.transaction():
        ((comment_id,),) = backend.rows(_sql(backend, "insert_comment"), {**params, "user": user})
        where = name if version is None else f"{name}@{version}"
        details = {"kind": kind, "comment": int(comment_id), "version": version, "as_user": user}
        audit.record(backend, "comment", where, details)
    return int(comment_id)


def _version(backend: Backend, kind: str, name: str, version) -> int:
    if kind not in VERSIONED:
        raise ValueError(f"{_label(kind, name)} has no versions: comment on it without one")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive whole number, got {version!r}")
    ((found,),) = backend.rows(
        _sql(backend, "version_exists"), {"kind": kind, "name": name, "version": version}
    )
    if not found:
        raise NotFoundError(f"version of {_label(kind, name)}", version)
    return version


# -- descriptions and tags -------------------------------------------------------------------
def describe(
    backend: Backend,
    kind: str,
    name: str,
    *,
    description: str | None = _UNSET,
    tags: dict | None = _UNSET,
    replace_tags: bool = False,
) -> dict:
    """Set an object's description and/or merge ``tags`` into its tags (a tag given None is
    removed; ``replace_tags`` replaces them all), audited; the object as now stored.

    Models: the model's description and its default version's tags (``update_model``); feature
    sets: their latest version's; a job's description is its comment."""
    kind = check_object(backend, kind, name)
    if description is _UNSET and tags is _UNSET:
        raise ValueError("describe needs description= and/or tags=")
    if description is not _UNSET and description is not None and not isinstance(description, str):
        raise ValueError(f"description must be text or None, got {type(description).__name__}")
    if kind == "model":
        given = {"tags": tags, "description": description}
        changes = {key: value for key, value in given.items() if value is not _UNSET}
        registry.update(backend, name, None, replace_tags=replace_tags, **changes)
        return catalog_object(backend, kind, name)
    before = catalog_object(backend, kind, name)
    after_description = before["description"] if description is _UNSET else description
    after_tags = before["tags"] if tags is _UNSET else _merged(before["tags"], tags, replace_tags)
    with backend.transaction():
        backend.execute(
            _sql(backend, f"describe_{kind}"),
            {
                "name": name,
                "description": after_description,
                "tags": json.dumps(after_tags) if after_tags else None,
            },
        )
        changes: dict[str, Any] = {"kind": kind}
        if description is not _UNSET:
            changes["description"] = {"before": before["description"], "after": after_description}
        if tags is not _UNSET:
            changes["tags"] = {"before": before["tags"], "after": after_tags}
        audit.record(backend, "describe", name, changes)
    return catalog_object(backend, kind, name)


def _merged(before: dict, tags: dict | None, replace: bool) -> dict:
    if tags is not None and not isinstance(tags, dict):
        raise ValueError(f"tags must be a dict, got {type(tags).__name__}")
    if tags and not all(isinstance(k, str) and k for k in tags):
        raise ValueError(f"tag names must be non-empty strings, got {list(tags)}")
    after = {} if replace or tags is None else dict(before)
    for key, value in (tags or {}).items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    json.dumps(after)  # a value JSON cannot hold fails here, before anything is written
    return after

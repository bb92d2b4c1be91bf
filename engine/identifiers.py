"""Validation and quoting of the names users give to models, tables, columns and aliases.

Only names that pass these checks ever reach SQL text, and they reach it quoted by
sqlglot for the backend's dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from indb.errors import InvalidNameError

# Lowercase so that unquoted SQL written by users (which most engines fold) finds the object.
_OBJECT_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_MODEL_NAME = 40  # leaves room for predict_proba_<model>_v<N> within PostgreSQL's 63 bytes
MAX_NAME = 63


def _check(value: object, kind: str, pattern: re.Pattern, max_length: int, hint: str) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"{kind} name must be a string, got {type(value).__name__}")
    if not pattern.fullmatch(value) or len(value) > max_length:
        raise InvalidNameError(
            f"{kind} name {value!r} is not a plain identifier: expected {hint}, "
            f"at most {max_length} characters"
        )
    return value


def model_name(value: object) -> str:
    return _check(
        value,
        "model",
        _OBJECT_NAME,
        MAX_MODEL_NAME,
        "lowercase letters, digits and underscores, starting with a letter or underscore",
    )


def table_name(value: object) -> str:
    return _check(
        value,
        "table",
        _OBJECT_NAME,
        MAX_NAME - len("_ground_truth"),
        "lowercase letters, digits and underscores, starting with a letter or underscore",
    )


def alias_name(value: object) -> str:
    return _check(
        value,
        "alias",
        _OBJECT_NAME,
        MAX_NAME,
        "lowercase letters, digits and underscores (e.g. 'production', 'staging')",
    )


def column_name(value: object) -> str:
    return _check(
        value,
        "column",
        _COLUMN_NAME,
        MAX_NAME,
        "letters, digits and underscores, starting with a letter or underscore",
    )


# Role names PostgreSQL gives a meaning of its own: quoted or not, ``GRANT ... TO "public"``
# grants to everyone; ``none`` and ``pg_*`` may not be created.
_RESERVED_ROLES = frozenset({"public", "none", "current_user", "session_user", "current_role"})


def role_name(value: object, purpose: str = "") -> str:
    """A PostgreSQL role indb grants to (``purpose``: reader, app, ...): lowercase so that
    the ``GRANT <role> TO ...`` a DBA types unquoted names the same role."""
    kind = f"{purpose} role".strip()
    name = _check(
        value,
        kind,
        _OBJECT_NAME,
        MAX_NAME,
        "lowercase letters, digits and underscores, starting with a letter or underscore",
    )
    if name in _RESERVED_ROLES or name.startswith("pg_"):
        raise InvalidNameError(f"{kind} name {name!r} is reserved by PostgreSQL (public, none, pg_*)")
    return name


@dataclass(frozen=True)
class Quoted:
    """SQL text of an identifier that was validated and quoted; the only thing templates accept."""

    text: str

    def __str__(self) -> str:
        return self.text


def quote(*parts: str, dialect: str) -> Quoted:
    """Quote a (possibly schema-qualified) identifier for ``dialect``."""
    return Quoted(".".join(exp.to_identifier(p, quoted=True).sql(dialect=dialect) for p in parts))


def literal(value: str, dialect: str) -> Quoted:
    """A string literal for DDL positions that take no bound parameters (e.g. nextval('seq'))."""
    return Quoted(exp.Literal.string(value).sql(dialect=dialect))


def fill(template: str, **slots: Quoted) -> str:
    """Fill a SQL template's ``{slots}``; only validated, quoted text is accepted."""
    for name, value in slots.items():
        if not isinstance(value, Quoted):
            raise TypeError(f"slot {name!r} must be Quoted SQL text, got {type(value).__name__}")
    return template.format(**{k: v.text for k, v in slots.items()})


def join(parts, separator: str = ", ", prefix: str = "") -> Quoted:
    """Join quoted pieces into one fragment, each preceded by ``prefix``."""
    return Quoted(separator.join(prefix + p.text for p in parts))


def monitor_name(value: object) -> str:
    return _check(
        value,
        "monitor",
        _OBJECT_NAME,
        MAX_NAME,
        "lowercase letters, digits and underscores, starting with a letter or underscore",
    )


def feature_set_name(value: object, kind: str = "feature set") -> str:
    """Feature sets, entities and training sets: room for ``fs_<name>_v<N>_latest``."""
    return _check(
        value,
        kind,
        _OBJECT_NAME,
        MAX_MODEL_NAME,
        "lowercase letters, digits and underscores, starting with a letter or underscore",
    )


_SQL_TYPE = re.compile(r"[A-Z][A-Z0-9_ ]*(\(\d+(,\s*\d+)?\))?")
# The words a plain column type is made of (DuckDB's and PostgreSQL's names): nothing else may
# follow a type into DDL (``BIGINT DEFAULT CURRENT_USER UNIQUE`` is a type and two clauses).
_TYPE_WORDS = frozenset(
    """BIGINT INTEGER INT SMALLINT TINYINT HUGEINT UBIGINT UINTEGER USMALLINT UTINYINT UHUGEINT
    INT1 INT2 INT4 INT8 INT16 LONG SHORT SIGNED DOUBLE PRECISION REAL FLOAT FLOAT4 FLOAT8
    DECIMAL NUMERIC VARCHAR TEXT STRING CHARACTER VARYING CHAR BPCHAR BOOLEAN BOOL LOGICAL DATE
    TIME TIMESTAMP TIMESTAMPTZ TIMESTAMP_S TIMESTAMP_MS TIMESTAMP_NS TIMESTAMP_US DATETIME WITH
    WITHOUT ZONE INTERVAL UUID BLOB BYTEA JSON JSONB""".split()
)


def sql_type(value: str) -> Quoted:
    """A column type reported by the database, checked before it is written into DDL: type
    names and a length/precision only."""
    if not isinstance(value, str) or not _SQL_TYPE.fullmatch(value.upper()):
        raise InvalidNameError(f"column type {value!r} is not a plain SQL type")
    words = value.upper().split("(")[0].split()
    unknown = [w for w in words if w not in _TYPE_WORDS]
    if unknown:
        raise InvalidNameError(
            f"column type {value!r} is not a plain SQL type: {' '.join(unknown)} is not part of a type name"
        )
    return Quoted(value.upper())

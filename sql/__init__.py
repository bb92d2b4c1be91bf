"""The SQL indb runs, kept as files.

A file holds the statements for one purpose, each introduced by a line
``-- name: <statement>``. Statements are written once in DuckDB's dialect with
``$name`` parameters; where another dialect differs, ``sql/<dialect>/<file>.sql``
holds its own version of just those statements, and the backend transpiles the
rest with sqlglot.

Templates for per-deployment DDL (``sql/<dialect>/*.sql``) hold ``{slots}`` that
are filled only with identifiers that were validated and quoted by
:mod:`indb.identifiers`; values are always bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{3})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str


def _read(relative: str) -> str:
    return resources.files(__name__).joinpath(relative).read_text(encoding="utf-8")


def _parse(text: str) -> dict[str, str]:
    parts = _NAME_LINE.split(text)
    found = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        found[name] = "\n".join(lines).strip().removesuffix(";").strip()
    return found


@cache
def statements(file: str, dialect: str = "duckdb") -> dict[str, tuple[str, bool]]:
    """Named statements of ``<file>.sql`` as (text, native); ``<dialect>/<file>.sql`` replaces
    single statements with ones written for that dialect (native: no transpiling needed)."""
    root = resources.files(__name__)
    found = {}
    for candidate, native in (
        (root.joinpath(f"{file}.sql"), dialect == "duckdb"),
        (root.joinpath(dialect, f"{file}.sql"), True),
    ):
        if candidate.is_file():
            parsed = _parse(candidate.read_text(encoding="utf-8"))
            found.update({name: (text, native) for name, text in parsed.items()})
    if not found:
        raise FileNotFoundError(f"no SQL file sql/{file}.sql or sql/{dialect}/{file}.sql")
    return found


def transpile(text: str, dialect: str) -> str:
    """DuckDB-dialect SQL (``$name`` parameters) rewritten for ``dialect``."""
    import sqlglot

    return ";\n".join(sqlglot.transpile(text, read="duckdb", write=dialect))


@cache
def statement(file: str, name: str, dialect: str = "duckdb") -> str:
    """One statement without slots, ready for ``dialect``."""
    return render(file, name, dialect)


def render(file: str, name: str, dialect: str = "duckdb", /, **slots) -> str:
    """One statement with its ``{slots}`` filled by quoted identifiers, ready for ``dialect``."""
    from indb.identifiers import fill

    try:
        text, native = statements(file, dialect)[name]
    except KeyError:
        raise KeyError(f"sql/{file}.sql has no statement named {name!r}") from None
    if slots:
        text = fill(text, **slots)
    return text if native else transpile(text, dialect)


@cache
def migrations() -> tuple[Migration, ...]:
    """Numbered catalog migrations, oldest first."""
    folder = resources.files(__name__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return tuple(sorted(found, key=lambda m: m.version))


def split_script(text: str) -> list[str]:
    """Split a script into statements on semicolons that end a line."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in re.split(r";\s*$", body, flags=re.MULTILINE) if part.strip()]

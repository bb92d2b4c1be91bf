"""PostgreSQL from inside the server: indb's backend over PL/Python's ``plpy``.

Job actions written in Python (``ingest``, ``rebuild_training_set``, ...) run in the server
when pg_cron calls ``indb.run_job`` (sql/postgres/server_python.sql imports indb there from
the catalog and calls :func:`run_action`). They get a :class:`PlpyBackend`: the
:class:`PostgresBackend` they know, whose statements go through ``plpy.execute(plpy.prepare(
sql, types), values)`` in the calling transaction instead of a psycopg connection.
Transactions are subtransactions (the job's transaction is ``indb.run_job``'s to commit), the
catalog lock is the same advisory transaction lock, and the user is the session's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal

import pandas as pd

from indb import errors
from indb.backends import postgres
from indb.backends.postgres import _TOKENS, PostgresBackend

# Parameter types by Python type, as psycopg sends them (bool before int: bool is an int); a
# str is "unknown" there, its type inferred by the server from where it stands (a str into a
# json or timestamp column works), and so it is here (see PlpyBackend._types).
_PARAM_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "bigint"),
    (float, "double precision"),
    (Decimal, "numeric"),
    (str, "unknown"),
    (datetime, "timestamp"),
    (date, "date"),
    (time, "time"),
    (bytes, "bytea"),
    (dict, "jsonb"),
)
# Statements PREPARE takes, whose "unknown" parameters the server can type (others: text).
_PREPARABLE = re.compile(r"\s*\(*\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES|MERGE)\b", re.I)
_READ_ONLY = re.compile(r"\s*\(*\s*(SELECT|VALUES)\b", re.I)
# PL/Python hands these types back as text; psycopg as Python values (type oid -> parser).
_RESULT_PARSERS = {
    1114: datetime.fromisoformat,  # timestamp
    1184: datetime.fromisoformat,  # timestamptz
    1082: date.fromisoformat,
    1083: time.fromisoformat,
}
_SEARCH_PATH = '"$user", public, indb'  # PostgresBackend's, set at connect


def _type(value) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return "timestamptz"
    if isinstance(value, list | tuple):  # an array, as psycopg sends a list
        items = [v for v in value if v is not None]
        inner = _type(items[0]) if items else "unknown"
        return "unknown" if inner == "unknown" else inner + "[]"
    for kind, name in _PARAM_TYPES:
        if isinstance(value, kind):
            return name
    if hasattr(value, "item"):  # numpy scalars
        return _type(value.item())
    raise TypeError(f"cannot pass a {type(value).__name__} as a SQL parameter")


def _value(value):
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def bind(sql: str, params) -> tuple[str, list[str], list]:
    """indb's ``$name`` / ``$1`` / ``?`` (and psycopg's ``%(name)s`` / ``%s``) parameters as
    PL/Python's ``$1..$n``, with their types and values. None is the NULL keyword: PL/Python
    cannot prepare an untyped parameter ("failed to find conversion function from unknown"),
    and an untyped NULL takes its type from where it stands, as psycopg's does."""
    if params is None:
        return sql, [], []
    named = params if isinstance(params, dict) else None
    positional = iter(()) if named is not None else iter(params)
    numbers: dict[str, int] = {}
    types: list[str] = []
    values: list = []

    def slot(key: str | None, value) -> str:
        if value is None:
            return "NULL"
        if key is not None and key in numbers:
            return f"${numbers[key]}"
        types.append(_type(value))
        values.append(_value(value))
        if key is not None:
            numbers[key] = len(values)
        return f"${len(values)}"

    out, position = [], 0
    for match in _TOKENS.finditer(sql):
        out.append(sql[position : match.start()])
        position = match.end()
        if match["skip"]:
            out.append(match["skip"])
        elif match["qmark"] or match["ready"] == "%s":
            out.append(slot(None, next(positional)))
        elif match["ready"]:
            key = match["ready"][2:-2]
            out.append(slot(key, named[key]))
        elif match["name"].isdigit():
            index = int(match["name"]) - 1
            value = named[match["name"]] if named is not None else list(params)[index]
            out.append(slot(match["name"], value))
        else:
            out.append(slot(match["name"], named[match["name"]]))
    out.append(sql[position:])
    return "".join(out), types, values


class _Result:
    """What a statement returned: column names and rows as psycopg would give them (plpy's rows
    are dicts by column name: ``duplicated`` says two columns share a name and values were lost)."""

    def __init__(self, result, no_columns: type[Exception], names: list[str] | None = None):
        try:
            self.columns = list(result.colnames())
            kinds = result.coltypes()
        except no_columns:  # a statement that returns no rows (INSERT, DDL)
            self.columns, kinds = None, []
        self.duplicated = self.columns is not None and len(set(self.columns)) < len(self.columns)
        if self.duplicated:
            self.rows = []
            return
        parsers = [_RESULT_PARSERS.get(k) for k in kinds]
        self.rows = [
            tuple(_parse(parser, row[c]) for c, parser in zip(self.columns or [], parsers, strict=True))
            for row in result
        ]
        if names is not None:
            self.columns = names


def _parse(parser, value):
    if parser is None or value is None:
        return value
    try:
        return parser(value)
    except ValueError:  # infinity, BC dates: kept as the server wrote them
        return value


class PlpyBackend(PostgresBackend):
    """indb's PostgreSQL backend inside the server, over PL/Python's ``plpy``."""

    def __init__(self, plpy):
        self.plpy = plpy
        self.has_plpython = True
        self._roles_read = False
        self.requested_roles = {}
        self.role_names = dict(postgres.ROLE_NAMES)
        self._plans: dict[tuple[str, tuple[str, ...]], object] = {}
        ((user, database, superuser),) = self.rows(
            "SELECT session_user, current_database(), rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        self.user, self.superuser = user, bool(superuser)
        self.url = f"postgresql://{user}@server/{database}"
        self.scope = self.url
        self.conn = None  # no client connection: everything goes through plpy

    # -- statements ---------------------------------------------------------------------------
    def _run(self, sql: str, params) -> _Result:
        text, types, values = bind(sql, params)
        result = self._execute(text, types, values)
        if result.duplicated:
            # two columns of one name (SELECT a.x, b.x; SELECT 1, 2): a read-only query runs
            # again with the columns renamed by position, then named back
            if not _READ_ONLY.match(text):
                raise errors.DatabaseError(f"two result columns share a name: {result.columns}")
            names = [f"c{n}" for n in range(len(result.columns))]
            wrapped = f"SELECT * FROM ({text.rstrip().rstrip(';')}) AS indb_q ({', '.join(names)})"
            result = self._execute(wrapped, types, values, result.columns)
        return result

    def _execute(self, text: str, types: list[str], values: list, names=None) -> _Result:
        if not types:
            return _Result(self.plpy.execute(text), self.plpy.Error, names)
        key = (text, tuple(types))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.plpy.prepare(text, self._types(text, types))
        return _Result(self.plpy.execute(plan, values), self.plpy.Error, names)

    def _types(self, text: str, types: list[str]) -> list[str]:
        """Parameter types with the "unknown" ones as the server infers them: PREPARE (which
        infers them, as for psycopg's unknown-typed values), read pg_prepared_statements,
        DEALLOCATE. Statements PREPARE does not take (CREATE TABLE AS) get text."""
        if "unknown" not in types:
            return types
        if not _PREPARABLE.match(text):
            return ["text" if t == "unknown" else t for t in types]
        name = f"indb_probe_{len(self._plans)}_{id(self)}"
        self.plpy.execute(f"PREPARE {name} ({', '.join(types)}) AS {text.rstrip().rstrip(';')}")
        try:
            lookup = self.plpy.prepare(
                "SELECT parameter_types::text[] AS t FROM pg_catalog.pg_prepared_statements WHERE name = $1",
                ["text"],
            )
            inferred = self.plpy.execute(lookup, [name])[0]["t"]
        finally:
            self.plpy.execute(f"DEALLOCATE {name}")
        return [t if t != "unknown" else found for t, found in zip(types, inferred, strict=True)]

    def execute(self, sql: str, params: dict | Sequence | None = None) -> None:
        self._run(sql, params)

    def rows(self, sql: str, params: dict | Sequence | None = None) -> list[tuple]:
        return self._run(sql, params).rows

    def query(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame:
        result = self._run(sql, params)
        return pd.DataFrame.from_records(result.rows, columns=result.columns or [])

    def run_user_sql(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame | None:
        result = self._run(sql, params)
        if result.columns is None:
            return None
        return pd.DataFrame.from_records(result.rows, columns=result.columns)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.plpy.subtransaction():
            yield

    def query_columns(self, sql: str) -> dict[str, str]:
        result = self.plpy.execute(f"SELECT * FROM ({sql}) AS indb_columns LIMIT 0")
        oids = [int(k) for k in result.coltypes()]
        names = dict(self.rows("SELECT oid::bigint, typname FROM pg_type WHERE oid = ANY($1)", [oids]))
        return {
            column: postgres._OID_NAMES.get(names.get(oid, ""), str(names.get(oid, oid)).upper())
            for column, oid in zip(result.colnames(), oids, strict=True)
        }

    def _load(self, name: str, frame: pd.DataFrame, types: list[str]) -> None:
        """Append a DataFrame's rows to table ``name`` in one statement: each column travels as
        one array parameter, unnested server-side (no COPY inside the server)."""
        columns = [self.quote(str(c)).text for c in frame.columns]
        arrays = [f"${n}::{t}[]" for n, t in enumerate(types, start=1)]
        insert = f"INSERT INTO {name} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(arrays)})"
        values = [[None if pd.isna(v) else _value(v) for v in frame[c].tolist()] for c in frame.columns]
        if not columns:
            return
        plan = self.plpy.prepare(insert, [f"{t}[]" for t in types])
        self.plpy.execute(plan, values)

    @staticmethod
    def _frame_types(frame: pd.DataFrame) -> list[str]:
        types = []
        for column in frame.columns:
            dtype = frame[column].dtype
            kind = postgres._FRAME_TYPES.get(dtype.kind, "text")
            types.append("timestamptz" if kind == "timestamp" and getattr(dtype, "tz", None) else kind)
        return types

    @contextmanager
    def staged(self, data) -> Iterator:
        """A temporary table filled from the frame (dropped afterwards), as PostgresBackend's."""
        frame = data if isinstance(data, pd.DataFrame) else data.to_pandas()
        name = self.quote(f"indb_staged_{id(data)}")
        types = self._frame_types(frame)
        columns = [self.quote(str(c)).text for c in frame.columns]
        definitions = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
        self.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        self.execute(f"CREATE TEMP TABLE {name} ({definitions})")
        try:
            self._load(name.text, frame, types)
            yield name
        finally:
            self.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")

    def write_table(self, table: str, frame: pd.DataFrame, *, replace: bool) -> None:
        name = self.quote(table).text
        types = self._frame_types(frame)
        with self.transaction():
            if replace:
                columns = [self.quote(str(c)).text for c in frame.columns]
                self.execute(f"DROP TABLE IF EXISTS {name}")
                definitions = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
                self.execute(f"CREATE TABLE {name} ({definitions})")
            else:  # the table's own column types (text does not cast to timestamp on insert)
                existing = dict(
                    self.rows(
                        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = to_regclass($t) AND attnum > 0 AND NOT attisdropped",
                        {"t": name},
                    )
                )
                types = [existing.get(str(c), t) for c, t in zip(frame.columns, types, strict=True)]
            self._load(name, frame, types)

    def translate(self, error: Exception) -> Exception:
        return error

    def close(self) -> None:
        self._plans.clear()


# -- entry points for sql/postgres/server_python.sql ------------------------------------------------
def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def run_action(plpy, run: dict) -> dict:
    """Run one job run's action (``run``: indb.job_python_run's record) with a PlpyBackend
    on this session's transaction, with PostgresBackend's search_path; its result JSON."""
    from indb.jobs import actions

    action = actions.get(run["action"])
    backend = PlpyBackend(plpy)
    backend.execute("SELECT pg_catalog.set_config('search_path', $path, true)", {"path": _SEARCH_PATH})
    context = actions.Context(
        run["job"],
        int(run["run_id"]),
        run["owner"],
        _moment(run.get("scheduled_for")),
        _moment(run["started_at"]),
    )
    result = action.run(backend, action.check(dict(run["arguments"])), context) or {}
    if not isinstance(result, dict):
        raise TypeError(f"action {run['action']!r} returned {type(result).__name__}, not a dict")
    return json.loads(json.dumps(result, default=str))


def retrain(plpy, model: str) -> int:
    """``CALL indb.retrain(model)``: the model's retraining policy now, on this session's
    transaction with the caller's rights, triggered by ``sql:<session user>``; the run's id."""
    from indb.lifecycle import retraining

    backend = PlpyBackend(plpy)
    backend.execute("SELECT pg_catalog.set_config('search_path', $path, true)", {"path": _SEARCH_PATH})
    return retraining.retrain(backend, model, triggered_by=f"sql:{backend.user}").id


def check_action(name: str, arguments: dict) -> dict:
    """The arguments of a registered action with its defaults (indb.schedule's check)."""
    from indb.jobs import actions

    return actions.get(name).check(arguments)

"""Embedded DuckDB (>= 2.0): models as Arrow UDFs behind macros, scoring by statement triggers.

A Python UDF belongs to the DuckDB instance of this process, so every connection
indb opens registers the scoring function of every model version; the public
``predict_*`` macros live in the database file and call them.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pandas as pd
import sqlglot
from sqlglot import exp

from indb import errors
from indb.backends.base import Backend, Check, ModelRef, ScoringTarget, statement_trigger_names
from indb.identifiers import Quoted, join, literal, quote
from indb.sql import statement
from indb.udfs import explain_udf, onnx_udf
from indb.udfs.compiler import dialects

_UDF_ERROR = re.compile(r"Python exception occurred while executing the UDF: (\w+): (.*)", re.S)
_SQL_ERROR = re.compile(r"^[\w ]+Error: (ScoringError|IntegrityError): (.*)", re.S)  # from error() in SQL
_PLAIN_CLIENT = re.compile(
    r"Scalar Function with name ((?:deployed with runtime onnx|model \w+ version \d+ runs on onnxruntime"
    r"|explained by indb in python)"
    r": .*?\)) does not exist"
)
_SYSTEM_SUGGESTION = re.compile(r'\nDid you mean "(pg_|duckdb_|sqlite_|pragma_|information_schema)[\w.]*"\?')
# The request table's CHECKs (sql/duckdb/deploy.sql): id and created_at are the server's.
_SERVER_COLUMN = re.compile(
    r'CHECK constraint failed on table "([^"]+)" with expression '
    r"CHECK\(\((created_at = |id <= currval)"
)
_OUR_ERRORS = {"ScoringError": errors.ScoringError, "IntegrityError": errors.IntegrityError}

# Open backends per database file: a UDF outlives the connection that registered it, so
# it loads model bytes through whichever connection to its database is still open.
_open: dict[str, weakref.WeakSet] = {}
_open_lock = threading.Lock()
# One in-process DuckDB instance per file, shared by every indb connection to it.
_instances: dict[str, tuple[duckdb.DuckDBPyConnection, str, int]] = {}
# Per file, connections indb no longer uses that made Python functions (scorers, explainers):
# DuckDB's client frees a function with the connection that made it, while every connection's
# triggers still call it, so they are closed with the file's last connection.
_makers: dict[str, list[duckdb.DuckDBPyConnection]] = {}
_RETURNS_ROWS = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
    duckdb.StatementType.CALL,
}
_CHANGES_ROWS = {duckdb.StatementType.INSERT, duckdb.StatementType.UPDATE, duckdb.StatementType.DELETE}
_RESERVED_CATALOGS = ("indb", "memory", "system", "temp", "main")

# (scope, table) -> deploys waiting for db.insert to give the table's triggers back
# (DuckDBBackend.retrying): meanwhile db.insert skips them instead of dropping them.
_waiting: dict[tuple[str, str], int] = {}
# Triggers (scope, table, name, sql, comment) found different once made again from their kept
# statement: db.insert skips those instead of dropping them.
_remade_differ: set[tuple] = set()


class _Trigger(NamedTuple):
    """One row of scoring.sql's insert_plan."""

    name: str
    statement: str | None
    schema: str
    server_ids: bool
    sql: str
    comment: str | None
    tags: Any

    @property
    def installed(self) -> tuple:
        return self.name, self.sql, self.comment, self.tags


class _NotDropped(Exception):
    """db.insert could not drop the triggers (another transaction changes them) or found them
    different once made again: its transaction is rolled back and it skips them instead."""


def _installed_key(scope: str, table: str, plan: list[_Trigger]) -> tuple:
    return scope, table, tuple((t.name, t.sql, t.comment) for t in plan)


def _catalog_conflict(error: Exception) -> bool:
    """DuckDB's refusal to change a catalog entry another open transaction has changed."""
    return "write-write conflict" in str(error)


def _catalog_alias(path: str) -> str:
    """DuckDB names a file's catalog after its stem; for indb.duckdb that would collide with the
    schema indb (`indb.models` becomes ambiguous), so files are attached under another name."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0]) or "db"
    if stem[0].isdigit() or stem.lower() in _RESERVED_CATALOGS:
        stem = f"{stem}_db"
    return stem


def _retire(key: str, con: duckdb.DuckDBPyConnection, made_functions: bool) -> None:
    """A connection indb no longer uses: closed, or kept until the file's last connection closes
    if it made Python functions (see _makers)."""
    if made_functions and key != ":memory:":
        with _open_lock:
            _makers.setdefault(key, []).append(con)
    else:
        con.close()


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    if path == ":memory:":
        return duckdb.connect(":memory:")
    key = os.path.abspath(path)
    with _open_lock:
        root, alias, users = _instances.get(key) or (None, _catalog_alias(key), 0)
        if root is None:
            root = duckdb.connect(":memory:")
            try:
                root.execute(f"ATTACH {literal(key, 'duckdb')} AS {quote(alias, dialect='duckdb')}")
            except duckdb.Error:
                root.close()
                raise
        _instances[key] = (root, alias, users + 1)
    con = root.cursor()
    con.execute(f"USE {quote(alias, dialect='duckdb')}")
    return con


def _disconnect(key: str, con: duckdb.DuckDBPyConnection, made_functions: bool) -> None:
    """``key``: the absolute path :func:`_connect` resolved, not the path again: the process
    may have changed directory since (and the one it was in may be gone)."""
    _retire(key, con, made_functions)
    if key == ":memory:":
        return
    with _open_lock:
        root, alias, users = _instances[key]
        if users > 1:
            _instances[key] = (root, alias, users - 1)
            return
        del _instances[key]
        makers = _makers.pop(key, [])
    for maker in makers:
        maker.close()
    root.execute(f"DETACH {quote(alias, dialect='duckdb')}")
    root.close()


def scoring_function(ref: ModelRef, *, trigger: bool = False) -> str:
    """The UDF's name binds the stored bytes: a changed blob is never scored by a stale UDF.
    Triggers call a variant whose onnxruntime uses every core: DuckDB runs a trigger body on
    one thread, while a query calls the plain variant from each of its threads."""
    return f"indb_score_{ref.model}_v{ref.version}_{ref.sha256[:12]}" + ("_bulk" if trigger else "")


def plain_client_function(ref: ModelRef, *, trigger: bool = True) -> str:
    """The name triggers (and ``predict_*`` macros, ``trigger=False``) call the onnx runtime by.
    A process that never loaded indb has no such function, and DuckDB's "Scalar Function with
    name ... does not exist" then reads as the fix. indb registers these names as well as the
    ``indb_score_*`` ones that triggers and macros of earlier versions call."""
    if not trigger:
        return (
            f"model {ref.model} version {ref.version} runs on onnxruntime: deploy it with "
            f"runtime='sql' to call it from clients that do not load indb ({ref.sha256[:12]})"
        )
    return (
        "deployed with runtime onnx: redeploy with runtime='sql' to score from clients that do "
        f"not load indb (model {ref.model} version {ref.version}, {ref.sha256[:12]})"
    )


def _function_identifier(name: str) -> Quoted:
    """A function name that is a sentence (see :func:`plain_client_function`), quoted by sqlglot."""
    return Quoted(exp.to_identifier(name, quoted=True).sql("duckdb"))


def model_functions(model: str, version: int | None = None) -> tuple[str, str]:
    suffix = "" if version is None else f"_v{version}"
    return f"predict_{model}{suffix}", f"predict_proba_{model}{suffix}"


# numpy kinds a DataFrame column may have to be staged as Arrow: DuckDB reads them as the same
# types either way (bool, signed and unsigned integers, float32 and float64).
_ARROW_KINDS = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (4, 8)}


def _arrow_of(frame: pd.DataFrame):
    """``frame`` as an Arrow table over the same memory, or ``frame`` itself unless every
    column is a contiguous numpy array of a kind in _ARROW_KINDS under a unique string name.

    DuckDB's pandas scan reads a NaN in a float column as NULL, so a float column with a NaN
    gets Arrow nulls there (``from_pandas``: a validity bitmap, the values still shared); its
    sum is NaN exactly when it holds one, a cheaper test than building the bitmap for every
    column. Numbers are not copied (booleans are packed into bits, an eighth of their size):
    Python holds one copy of the rows, the frame's."""
    import pyarrow as pa

    names = list(frame.columns)
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return frame
    arrays = []
    for position, dtype in enumerate(frame.dtypes):
        # a numpy dtype, not pandas' own (nullable integers, strings, categories, times)
        if not isinstance(dtype, np.dtype) or dtype.itemsize not in _ARROW_KINDS.get(dtype.kind, ()):
            return frame
        values = frame.iloc[:, position].to_numpy()
        if values.dtype != dtype or values.ndim != 1 or not values.flags.c_contiguous:
            return frame
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: then from_pandas
            nan = dtype.kind == "f" and bool(np.isnan(values.sum()))
        arrays.append(pa.array(values, from_pandas=nan))
    return pa.Table.from_arrays(arrays, names=names)


class _Workers:
    """The backend's connection and cursors beside it, each running one statement at a time:
    on the connection in its own transaction, on a cursor in a transaction rolled back once its
    rows are collected (see Backend.workers). DuckDB releases the GIL while it executes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, cursors: list, rows: int):
        self.rows = rows  # in the shared table
        self._con, self._cursors = con, cursors
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for cursor in [con, *cursors]:
            self._free.put(cursor)

    def run(self, statement: str, params, collect: str, collect_params) -> Any:
        """None when the statement ran on the connection itself (its rows are written there)."""
        cursor = self._free.get()
        try:
            if cursor is self._con:
                cursor.execute(statement, params)
                return None
            cursor.begin()
            try:
                cursor.execute(statement, params)
                return cursor.sql(collect, params=collect_params).to_arrow_table()
            finally:
                cursor.rollback()
        finally:
            self._free.put(cursor)

    def interrupt(self) -> None:
        for cursor in [self._con, *self._cursors]:
            cursor.interrupt()


class DuckDBBackend(Backend):
    name = "duckdb"
    dialect = "duckdb"
    supports_python_udfs = True
    supports_statement_triggers = True
    asof_join = True
    nested_types = True

    def __init__(self, path: str):
        self.path = path
        self.url = f"duckdb:///{path}" if path == ":memory:" else f"duckdb://{path}"
        from indb.audit import os_user  # the OS user by uid ($LOGNAME can say anything)

        self.user = os_user()
        try:
            self.con = _connect(path)
        except duckdb.Error as e:
            raise errors.DatabaseError(f"cannot open DuckDB database {path!r}: {e}") from None
        self._depth = 0
        self._reset_after_rollback = False  # see _fire_triggers
        self.catalog_waits = 0  # conflicts :meth:`retrying` waited out on this connection
        self._made_functions = False  # see _makers
        self._cursors: set[duckdb.DuckDBPyConnection] = set()  # workers' (see interrupt)
        ((self.catalog,),) = self.rows("SELECT current_database()")
        # Scope of cached sessions and of the open-connection registry.
        self.scope = os.path.abspath(path) if path != ":memory:" else f":memory:{id(self)}"
        with _open_lock:
            _open.setdefault(self.scope, weakref.WeakSet()).add(self)

    # -- statements ---------------------------------------------------------------------------
    def execute(self, sql: str, params: dict | Sequence | None = None) -> None:
        self.con.execute(sql, params)

    def query(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    def rows(self, sql: str, params: dict | Sequence | None = None) -> list[tuple]:
        return self.con.execute(sql, params).fetchall()

    def run_user_sql(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame | None:
        cursor = self.con.execute(sql, params)
        if cursor is None:  # DuckDB found no statement (the text holds only comments)
            raise errors.QueryError("the SQL text holds no statement, only comments or blanks")
        if cursor.description is None:
            return None
        statements = duckdb.extract_statements(sql)
        kind = statements[-1].type if statements else None
        if kind in _CHANGES_ROWS:  # a row count unless the statement has RETURNING
            if [d[0] for d in cursor.description] == ["Count"]:
                return None
        elif kind not in _RETURNS_ROWS:
            return None
        return cursor.df()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.con.rollback()
            if self._reset_after_rollback:
                self._reset_after_rollback = False
                self._fire_triggers()
            raise
        self._depth = 0
        self.con.commit()

    def write_table(self, table: str, frame: pd.DataFrame, *, replace: bool) -> None:
        name = self.quote(table).text
        view = f"indb_frame_{id(frame)}"
        self.con.register(view, frame)
        try:
            if replace:
                self.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {view}")
            else:
                self.execute(f"INSERT INTO {name} BY NAME SELECT * FROM {view}")
        finally:
            self.con.unregister(view)

    def table_columns(self, table: str) -> dict[str, str] | None:
        # duckdb_columns() is what information_schema.columns selects from, at a fifth of the
        # time (0.5 against 1.7 ms on a quiet machine, 2 against 11 ms at load 5): db.insert
        # reads the columns at every call
        found = self.rows(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = current_schema() "
            "AND table_name = $table "
            "ORDER BY column_index",
            {"table": table},
        )
        return {name: data_type for name, data_type in found} or None

    def query_columns(self, sql: str) -> dict[str, str]:
        return {row[0]: row[1] for row in self.rows(f"DESCRIBE {sql}")}

    @contextmanager
    def staged(self, data) -> Iterator[Quoted]:
        """A DataFrame of plain numpy columns is staged as Arrow over the same memory
        (:func:`_arrow_of`): DuckDB scans Arrow faster than pandas (measured in
        benchmarks/RESULTS.md); any other frame as it is."""
        name = f"indb_staged_{id(data)}"
        if isinstance(data, pd.DataFrame):
            data = _arrow_of(data)
        self.con.register(name, data)
        try:
            yield self.quote(name)
        finally:
            self.con.unregister(name)

    def statement_workers(self, requested: int | None = None) -> int:
        """By default one per DuckDB thread (the ``threads`` setting: the cores unless set
        lower). Every statement runs on the instance's one pool of threads; callers added
        beside it keep the cores busy through the parts DuckDB runs on one thread (ordered
        windows, planning, a Python UDF). Always 1 inside a transaction the caller opened:
        another cursor would not see its uncommitted rows."""
        if self._depth > 1:
            return 1
        if requested is None:
            ((requested,),) = self.rows("SELECT current_setting('threads')")
        return max(1, int(requested))

    @contextmanager
    def workers(self, count: int, shared: str, params: Sequence) -> Iterator[_Workers]:
        """This connection and ``count - 1`` cursors of this instance (see Backend.workers).
        ``shared`` runs once into an in-memory database attached for the block (committed
        there, so every cursor sees it; the file is not written), and each connection reads it
        through a temporary view of the table's name: a temporary table is seen only by the
        connection that made it. This connection's view is made in its transaction and
        dropped at the end of the block (by the rollback when the block fails)."""
        create = sqlglot.parse_one(shared, read=self.dialect)
        if not (
            isinstance(create, exp.Create)
            and create.find(exp.TemporaryProperty)
            and isinstance(create.expression, exp.Query)
        ):
            raise errors.DatabaseError("shared statement is not CREATE TEMPORARY TABLE ... AS SELECT")
        scratch = f"indb_run_{uuid.uuid4().hex[:12]}"
        scratch_name = quote(scratch, dialect=self.dialect)
        name = exp.to_identifier(create.this.name, quoted=True)
        table = exp.Table(this=name, db=exp.to_identifier("main"), catalog=exp.to_identifier(scratch))
        copy = exp.Create(this=table, kind="TABLE", expression=create.expression)
        view = exp.Create(
            this=exp.Table(this=name),
            kind="VIEW",
            expression=exp.select("*").from_(table.copy()),
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        ).sql(dialect=self.dialect)
        helper, cursors = self._cursor(), []
        helper.execute(self.render("workers", "attach_scratch", scratch=scratch_name))
        try:
            helper.execute(copy.sql(dialect=self.dialect), params)
            count_rows = exp.select(exp.Count(this=exp.Star())).from_(table.copy())
            ((rows,),) = helper.execute(count_rows.sql(dialect=self.dialect)).fetchall()
            self.con.execute(view)
            for _ in range(count - 1):
                cursors.append(self._cursor())
                cursors[-1].execute(view)
            yield _Workers(self.con, cursors, int(rows))
            drop = exp.Drop(tables=[exp.Table(this=name.copy())], kind="VIEW")
            self.con.execute(drop.sql(dialect=self.dialect))
        finally:
            for cursor in cursors:
                self._cursors.discard(cursor)
                cursor.close()
            helper.execute(self.render("workers", "detach_scratch", scratch=scratch_name))
            self._cursors.discard(helper)
            helper.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to this instance, on this backend's database."""
        cursor = self.con.cursor()
        self._cursors.add(cursor)
        catalog = quote(self.catalog, dialect=self.dialect)
        cursor.execute(self.render("workers", "use_catalog", catalog=catalog))
        return cursor

    def interrupt(self) -> None:
        """From another thread (a job's timer): a worker's cursor may close meanwhile."""
        self.con.interrupt()
        for cursor in list(self._cursors):
            try:
                cursor.interrupt()
            except duckdb.Error:
                pass

    def translate(self, error: Exception) -> Exception:
        if isinstance(error, errors.IndbError):
            return error
        if not isinstance(error, duckdb.Error):
            return error
        text = str(error)
        match = _UDF_ERROR.search(text) or _SQL_ERROR.search(text)
        if match and match[1] in _OUR_ERRORS:
            return _OUR_ERRORS[match[1]](match[2].strip() + " (statement rolled back)")
        stamped = _SERVER_COLUMN.search(text)
        if stamped:
            column = stamped[2].split()[0]  # created_at or id
            return errors.DatabaseError(
                f"{stamped[1]}.{column} is set by the server: leave it out of the INSERT (keep "
                "an id or time of your own in a column of its own) (statement rolled back)"
            )
        if _catalog_conflict(error):
            return errors.DatabaseError(
                f"{text} (another transaction is changing the same objects, such as a db.insert "
                "that holds the table's triggers dropped until it commits, or a deploy: "
                "the statement was rolled back; run it again)"
            )
        missing = _PLAIN_CLIENT.search(text)
        if missing:
            return errors.ScoringError(f"{missing[1]} (statement rolled back)")
        # DuckDB suggests its pg_catalog look-alikes for any missing table ("Did you mean
        # pg_class?"): no help to someone who mistyped, or has not yet created, their table.
        return errors.DatabaseError(_SYSTEM_SUGGESTION.sub("", text))

    def close(self) -> None:
        """Idempotent: a second close must not release the shared instance a second time (it
        would detach the file under another connection that still uses it)."""
        with _open_lock:
            if getattr(self, "_closed", False):
                return
            self._closed = True
            _open.get(self.scope, weakref.WeakSet()).discard(self)
        _disconnect(":memory:" if self.path == ":memory:" else self.scope, self.con, self._made_functions)

    # -- models -------------------------------------------------------------------------------
    def _load_bytes(self, model: str, version: int) -> bytes:
        with _open_lock:
            live = list(_open.get(self.scope, ()))
        for backend in live:
            try:
                cursor = backend.con.cursor()
                cursor.execute(f"USE {quote(backend.catalog, dialect=self.dialect)}")
            except duckdb.Error:
                continue
            try:
                found = cursor.execute(
                    "SELECT onnx FROM indb.model_versions WHERE model = $m AND version = $v",
                    {"m": model, "v": version},
                ).fetchone()
            finally:
                cursor.close()
            if found is None:
                raise errors.NotFoundError("model version", f"{model} v{version}")
            return found[0]
        raise errors.DatabaseError(f"no open indb connection to {self.path!r} to load {model!r}")

    def _has_function(self, name: str) -> bool:
        """Whether the catalog has a function ``name``, seen by this connection. Listing
        ``duckdb_functions()`` builds a row for each of ~3,300 functions (14-60 ms; a monitor run
        asked twice), so a cursor of its own binds ``name()`` first: with no arguments none of
        indb's functions binds, and only a missing name fails with a CatalogException. The
        cursor's own transaction takes the failure (DuckDB aborts a transaction on any error,
        the user's too). It sees committed functions only: a miss falls back to the listing on
        this connection, which also sees a function this connection's open transaction made."""
        probe = exp.select(exp.Anonymous(this=exp.to_identifier(name, quoted=True))).where(exp.false())
        cursor = self.con.cursor()
        try:
            cursor.execute(probe.sql(dialect=self.dialect, normalize_functions=False))
            return True
        except duckdb.CatalogException:
            pass
        except duckdb.BinderException:  # the name exists, with other arguments
            return True
        finally:
            cursor.close()
        return bool(self.rows("SELECT 1 FROM duckdb_functions() WHERE function_name = $n", {"n": name}))

    def _create_function(self, name: str, function, *args, **kwargs) -> None:
        self._made_functions = True
        self.con.create_function(name, function, *args, **kwargs)

    def _renew_connection(self) -> None:
        """A new connection to the file in place of this one (outside any transaction): DuckDB's
        client refuses the name of a function its connection made in a transaction that was
        rolled back, so a verb run again by :meth:`retrying` could not make it again."""
        if self.path == ":memory:" or not self._made_functions:
            return
        old, self.con = self.con, _connect(self.scope)  # the absolute path
        with _open_lock:  # _connect counted one more user of the file
            root, alias, users = _instances[self.scope]
            _instances[self.scope] = (root, alias, users - 1)
        _retire(self.scope, old, made_functions=True)
        self._made_functions = False

    def register_udf(self, ref: ModelRef) -> None:
        """Register the Arrow scoring UDFs of one version unless this instance has them."""
        sig = ref.signature
        cores = os.cpu_count() or 1
        for name, threads in (
            (scoring_function(ref), 1),
            (scoring_function(ref, trigger=True), cores),
            (plain_client_function(ref), cores),
            (plain_client_function(ref, trigger=False), 1),
        ):
            if self._has_function(name):
                continue
            scorer = onnx_udf.make_scorer(
                ref.model,
                ref.version,
                ref.sha256,
                sig,
                lambda: self._load_bytes(ref.model, ref.version),
                self.scope,
                threads,
            )
            self._create_function(
                name,
                scorer,
                [i.argument_type for i in sig.inputs],
                onnx_udf.result_type(sig),
                type="arrow",
                null_handling="special",
                side_effects=False,
            )

    def prepare_model(self, ref: ModelRef) -> None:
        self.register_udf(ref)

    def register_scalar(self, name: str, function, arguments: list[str], returns: str, source: str) -> None:
        if not self._has_function(name):
            # "special": the function sees NULLs and may return NULL (a p-value with no
            # degrees of freedom), which DuckDB's default handling refuses.
            self._create_function(
                name, function, arguments, returns, null_handling="special", side_effects=False
            )

    def model_sql(self, ref: ModelRef, *, default: bool) -> list[str]:
        result = self._macro_sql(ref, version=ref.version)
        if default:
            result += self._macro_sql(ref, version=None)
        return result

    def _macro_sql(self, ref: ModelRef, version: int | None) -> list[str]:
        q = self.quote
        sig = ref.signature
        predict, proba = model_functions(ref.model, version)
        parameters = join(q(c) for c in sig.columns)
        function = _function_identifier(plain_client_function(ref, trigger=False))
        todo = [(predict, "create_predict_macro")]
        if sig.task == "classification":
            todo.append((proba, "create_proba_macro"))
        result = []
        for name, which in todo:
            result.append(
                self.render("scoring", which, name=q(name), parameters=parameters, function=function)
            )
            pinned = "" if version is not None else " (default version)"
            comment = f"indb model {ref.model} version {ref.version}{pinned}: " + sig.describe(name)
            result.append(
                self.render(
                    "scoring",
                    "comment_macro",
                    name=q(name),
                    comment=self.literal(comment),
                )
            )
        return result

    # -- scoring on insert --------------------------------------------------------------------
    def _score_rows(self, target: ScoringTarget, source: Quoted, arms: list | None = None) -> str:
        """One INSERT of the predictions of every arm (default: ``target`` alone) over ``source``."""
        q = self.quote
        selects = [self._arm_rows(arm, source) for arm in (arms or [target])]
        return self.render(
            "scoring",
            "score_rows",
            predictions=q(f"{target.table}_predictions"),
            probability_columns=join((q(c) for c in target.probability_columns), prefix=", ", separator=""),
            recorded=join((q(c) for c in target.recorded), prefix=", ", separator=""),
            arms=Quoted("\nUNION ALL\n".join(selects)),
        )

    def _arm_rows(self, target: ScoringTarget, source: Quoted) -> str:
        q = self.quote
        ref = target.model
        slots = {
            "model": self.literal(ref.model),
            "version": Quoted(str(int(ref.version))),
            "source": Quoted(target.source(self.dialect, source.text)),
            "recorded": join((q(c) for c in target.recorded), prefix=", ", separator=""),
            "role": self.literal(target.role),
            "served": Quoted("true" if target.served else "false"),
        }
        if target.compiled is not None:
            # One struct of the prediction and the probabilities: the model's SQL (a forest's
            # tree sum) appears once in the trigger body instead of once per output column, and
            # DuckDB plans a trigger body at every insert.
            outputs = dialects.render(target.compiled.outputs_tree(self.dialect), self.dialect)
            given = len(target.compiled.probabilities)
            values = [f"indb_outputs.p[{i + 1}]" for i in range(given)]
            values += ["NULL"] * (len(target.probability_columns) - given)
            return self.render(
                "scoring",
                "arm_rows_compiled",
                probability_values=join((Quoted(v) for v in values), prefix=", ", separator=""),
                outputs=Quoted(outputs),
                **slots,
            )
        values = [Quoted(f"result.probabilities[{i + 1}]") for i in range(len(target.probability_columns))]
        return self.render(
            "scoring",
            "arm_rows",
            probability_values=join(values, prefix=", ", separator=""),
            runtime=self.literal(target.runtime),
            function=_function_identifier(plain_client_function(ref)),
            arguments=join(q(c) for c in ref.signature.columns),
            **slots,
        )

    def scoring_sql(self, target: ScoringTarget, *, backfill: bool, previous: str | None) -> list[str]:
        # The version is part of the trigger body, so every deploy replaces the trigger; its
        # one INSERT scores every arm (champion, then each challenger).
        q = self.quote
        body = self._score_rows(target, self.inserted_rows, target.arms())
        trigger = self.trigger_sql(f"{target.table}_score", q(target.table), [body], skippable=True)
        trigger += self._explain_trigger(target)
        if not backfill:
            return trigger
        unscored = self.render(
            "deploy",
            "unscored_rows",
            table=q(target.table),
            predictions=q(f"{target.table}_predictions"),
        )
        return [self._score_rows(target, Quoted(unscored)), *trigger]

    @property
    def inserted_rows(self) -> Quoted:
        return Quoted(self.render("scoring", "skippable_rows"))

    def trigger_sql(
        self, trigger: str, table: Quoted, body, *, skippable: bool = False, **options
    ) -> list[str]:
        """The triggers (see :meth:`Backend.trigger_sql`), each followed by the catalog row of
        its statement for :meth:`insert_rows` (``skippable``), or the removal of a stale one."""
        made = super().trigger_sql(trigger, table, body, **options)
        names = statement_trigger_names(trigger, body)
        owner = self.literal(exp.to_table(table.text, dialect=self.dialect).name)
        result = []
        for text, name, body_text in zip(made, names, body, strict=True):
            result.append(text)
            slots = {"table": owner, "trigger": self.literal(name)}
            if skippable:
                result.append(
                    self.render(
                        "scoring", "record_trigger_statement", statement=self.literal(body_text), **slots
                    )
                )
            else:
                result.append(self.render("scoring", "forget_trigger_statement", **slots))
        return result

    # Fewer rows than this are inserted through the triggers: DuckDB splits an insert into
    # tasks by row group (122,880 rows), so a smaller one runs on one thread either way, and
    # skipping the triggers would only add statements (measured in benchmarks/RESULTS.md).
    skip_triggers_from = 2 * 122_880
    # Triggers whose statements are longer than this (characters, all of the table's together)
    # are skipped, not dropped: making a trigger again costs ~0.8 us per character (LR 4 KB:
    # 9 ms; GB-100 47 KB: 31 ms; GB 300 x depth 5 490 KB: 0.41 s), more than the parallel
    # insert saves (up to ~50 ms per 1M rows on 2 cores) past about this (benchmarks/RESULTS.md).
    drop_triggers_up_to = 64_000
    # How long a deploy, switch or undeploy waits for a db.insert that holds the table's
    # triggers dropped (seconds), trying again with a growing pause (at most retry_pause_max).
    catalog_wait = 30.0
    retry_pause_max = 0.5

    def insert_rows(self, table: str, insert: str, *, rows: int | None = None) -> int:
        """``insert`` with the table's triggers out of the way, then each trigger's own
        statement over the rows it inserted, in the caller's transaction: the table's insert
        and each statement run in parallel, where a trigger makes DuckDB run the insert on one
        thread (as INSERT ... RETURNING), even one whose statement selects no rows.

        Out of the way means dropped and made again before the commit when the transaction is
        db.insert's own (DDL is transactional in DuckDB: other connections see the triggers
        throughout, a crash leaves them in place), else skipped through the connection's
        variable, which still costs the single-threaded insert. Dropped only when each trigger
        reads the same after it is made again from indb's kept statement (else this insert
        and later ones skip them) and when no deploy waits for the table; another db.insert
        holding them dropped makes this one skip them, in a new transaction.

        Only when every trigger of the table can be skipped so and its ids come from its
        sequence alone, and ``rows`` (when known) is not below :attr:`skip_triggers_from`;
        else the insert fires the triggers."""
        plan = self._insert_plan(table)
        if (rows is not None and rows < self.skip_triggers_from) or not self._skippable(plan):
            return super().insert_rows(table, insert, rows=rows)
        if self._may_drop(table, plan):
            try:
                return self._insert_dropping(table, insert, plan)
            except _NotDropped:
                self.con.rollback()  # nothing of this transaction was done yet but the drop
                self.con.begin()
                plan = self._insert_plan(table)
                if not self._skippable(plan):
                    return super().insert_rows(table, insert, rows=rows)
        return self._insert_skipping(table, insert, plan)

    def _insert_plan(self, table: str) -> list[_Trigger]:
        check = f"(id <= currval({self.literal(f'{table}_id_seq').text}))"  # create_request_table's CHECK
        found = self.rows(statement("scoring", "insert_plan", self.dialect), {"table": table, "check": check})
        return [_Trigger(*row) for row in found]

    @staticmethod
    def _skippable(plan: list[_Trigger]) -> bool:
        return bool(plan) and all(t.statement is not None and t.server_ids for t in plan)

    def _may_drop(self, table: str, plan: list[_Trigger]) -> bool:
        """Whether db.insert may drop the triggers: its own transaction (the caller's may
        hold more), statements small enough to make again cheaply, no deploy waiting for the
        table, and the triggers not found different once made again before."""
        if self._depth != 1 or sum(len(t.statement) for t in plan) > self.drop_triggers_up_to:
            return False
        with _open_lock:
            waited = (self.scope, table) in _waiting
            return not waited and _installed_key(self.scope, table, plan) not in _remade_differ

    def _insert_dropping(self, table: str, insert: str, plan: list[_Trigger]) -> int:
        q = self.quote
        owner = q(plan[0].schema, table)
        try:
            for trigger in plan:
                self.execute(self.drop_trigger_sql(trigger.name, owner))
        except duckdb.TransactionException as e:
            if not _catalog_conflict(e):
                raise
            raise _NotDropped from None  # another transaction changes them: see _insert_skipping
        after = self._next_id(table)
        viewing = False
        try:
            ((count,),) = self.rows(insert)
            viewing = True
            self._run_statements(table, after, plan)
        finally:
            self._fire_triggers(skipping=False, viewing=viewing)
        for trigger in plan:  # made again as trigger_sql made them, in the order they fire
            self.execute(
                self.render(
                    "triggers",
                    "create_statement_trigger",
                    trigger=q(trigger.name),
                    table=owner,
                    body=Quoted(trigger.statement),
                )
            )
        installed = self.rows(statement("scoring", "installed_triggers", self.dialect), {"table": table})
        if [tuple(row) for row in installed] != [t.installed for t in plan]:
            with _open_lock:
                _remade_differ.add(_installed_key(self.scope, table, plan))
            raise _NotDropped  # rolled back: the triggers as they were; skipped instead
        return int(count)

    def _insert_skipping(self, table: str, insert: str, plan: list[_Trigger]) -> int:
        after = self._next_id(table)
        skipping = viewing = False
        try:
            self.execute(statement("scoring", "skip_triggers", self.dialect))
            skipping = True
            ((count,),) = self.rows(insert)
            self.execute(statement("scoring", "fire_triggers", self.dialect))
            skipping = False
            viewing = True
            self._run_statements(table, after, plan)
        finally:
            self._fire_triggers(skipping, viewing)
        return int(count)

    def _next_id(self, table: str) -> int:
        """A value of the table's sequence: every id this transaction inserts next is above it."""
        ((after,),) = self.rows(
            statement("scoring", "next_id", self.dialect), {"sequence": f"{table}_id_seq"}
        )
        return int(after)

    def _run_statements(self, table: str, after: int, plan: list[_Trigger]) -> None:
        """Each trigger's statement, in trigger order, over new_rows: the rows with an id
        above ``after`` (under DuckDB's snapshot, this transaction's own)."""
        inserted = self.quote(plan[0].schema, table)
        after_id = Quoted(str(int(after)))
        self.execute(self.render("scoring", "create_inserted_rows", table=inserted, after=after_id))
        for trigger in plan:
            self.execute(trigger.statement)

    def retrying(self, table: str, run):
        """``run()`` again, after a growing pause, while it fails on a catalog write-write
        conflict (a db.insert holds the table's triggers dropped: DuckDB fails such a change at
        once rather than wait), for at most :attr:`catalog_wait` seconds; meanwhile new
        db.inserts into the table skip its triggers instead of dropping them, so a stream
        of them cannot hold the deploy off. Inside a caller's transaction: once (only the
        whole transaction can run again)."""
        if self._depth:
            return run()
        deadline = time.monotonic() + self.catalog_wait
        pause, waiting = 0.005, False
        try:
            while True:
                try:
                    return run()
                except (duckdb.TransactionException, errors.DatabaseError) as e:
                    if not _catalog_conflict(e):
                        raise
                    if time.monotonic() + pause > deadline:
                        raise errors.DeploymentError(
                            f"table {table!r}: its triggers are being changed by another transaction "
                            f"(a db.insert under way, or another deploy) for more than "
                            f"{self.catalog_wait:g} s; nothing was changed, try again"
                        ) from None
                    if not waiting:
                        waiting = True
                        with _open_lock:
                            _waiting[(self.scope, table)] = _waiting.get((self.scope, table), 0) + 1
                    self.catalog_waits += 1
                    self._renew_connection()
                    time.sleep(pause)
                    pause = min(2 * pause, self.retry_pause_max)
        finally:
            if waiting:
                with _open_lock:
                    _waiting[(self.scope, table)] -= 1
                    if not _waiting[(self.scope, table)]:
                        del _waiting[(self.scope, table)]

    def _fire_triggers(self, skipping: bool = True, viewing: bool = True) -> None:
        """Triggers fire again on this connection (``skipping``: they may not), and new_rows is
        no longer its rows (``viewing``): after a failure too (variables and temporary views
        outlive a rolled-back transaction, and an aborted one refuses statements until its
        rollback, which :meth:`transaction` makes once the error reaches it)."""
        wanted = [
            name for name, needed in (("fire_triggers", skipping), ("drop_inserted_rows", viewing)) if needed
        ]
        for name in wanted:
            try:
                self.execute(statement("scoring", name, self.dialect))
            except duckdb.TransactionException:
                self._reset_after_rollback = True

    def _explain_trigger(self, target: ScoringTarget) -> list[str]:
        """``<table>_explain``, fired after ``<table>_score``: the champion's served rows'
        explanations (indb.explanations), or its removal when the deployment has none."""
        q = self.quote
        name = f"{target.table}_explain"
        plan = target.explain
        if plan is None:
            return [self.drop_trigger_sql(name, q(target.table))]
        champion = target.arms()[0]
        rows = champion.relation(self.dialect, self.inserted_rows.text)
        ref = target.model
        if plan.in_sql:
            body = plan.insert_sql(target.table, rows, self.dialect, ref)
        else:
            function = explain_udf.function_name(ref.model, ref.version, ref.sha256)
            body = plan.udf_insert_sql(target.table, rows, self.dialect, function, ref)
        return self.trigger_sql(name, q(target.table), [body], skippable=True)

    explains_in_process = True

    def prepare_explainer(self, ref: ModelRef, build) -> None:
        name = explain_udf.function_name(ref.model, ref.version, ref.sha256)
        if self._has_function(name):
            return
        self._create_function(
            name,
            explain_udf.make_explainer_udf(ref.signature, build),
            [i.argument_type for i in ref.signature.inputs],
            explain_udf.RESULT_TYPE,
            type="arrow",
            side_effects=False,
        )

    def explain_function_sql(self, ref: ModelRef, plan, *, default: bool) -> list[str]:
        from indb.udfs.compiler import dialects

        q = self.quote
        parameters = join(q(c) for c in ref.signature.columns)
        if plan.in_sql:
            tree = plan.function_body()
        else:
            function = explain_udf.function_name(ref.model, ref.version, ref.sha256)
            tree = plan.udf_body(function, ref.signature.columns)
        body = Quoted(dialects.render(tree, self.dialect))
        result = []
        for suffix in [f"_v{int(ref.version)}"] + ([""] if default else []):
            name = q(f"explain_{ref.model}{suffix}")
            result.append(
                self.render("explain", "create_explain_macro", name=name, parameters=parameters, body=body)
            )
            comment = (
                f"indb model {ref.model} version {ref.version}: contributions of each input to the raw "
                f"output ({plan.method}), a list of (feature, contribution)"
            )
            result.append(
                self.render("explain", "comment_explain_macro", name=name, comment=self.literal(comment))
            )
        return result

    def compiled_model_sql(self, ref: ModelRef, compiled, *, default: bool) -> list[str]:
        q = self.quote
        sig = ref.signature
        parameters = join(q(c) for c in sig.columns)
        proba = compiled.probabilities_array_sql(self.dialect)
        bodies = {"predict": compiled.prediction_sql(self.dialect)}
        if sig.task == "classification":
            bodies["predict_proba"] = proba
        result = []
        for version in (ref.version, None) if default else (ref.version,):
            names = dict(zip(("predict", "predict_proba"), model_functions(ref.model, version), strict=True))
            for kind, body in bodies.items():
                result.append(
                    self.render(
                        "scoring",
                        "create_compiled_macro",
                        name=q(names[kind]),
                        parameters=parameters,
                        body=Quoted(f"({body})"),
                    )
                )
                comment = f"indb model {ref.model} version {ref.version}, compiled SQL: " + sig.describe(
                    names[kind]
                )
                result.append(
                    self.render(
                        "scoring", "comment_macro", name=q(names[kind]), comment=self.literal(comment)
                    )
                )
        return result

    def unscoring_sql(self, table: str) -> list[str]:
        q = self.quote
        return [
            self.drop_trigger_sql(f"{table}_score", q(table)),
            self.drop_trigger_sql(f"{table}_explain", q(table)),
            self.render("scoring", "forget_table_statements", table=self.literal(table)),
        ]

    # -- doctor -------------------------------------------------------------------------------
    def health(self) -> list[Check]:
        import onnxruntime

        major = int(duckdb.__version__.split(".")[0])
        return [
            Check(
                "duckdb",
                major >= 2,
                f"DuckDB {duckdb.__version__}, database {self.path}",
                'pip install "duckdb>=2.0" (statement triggers arrived in 2.0)',
            ),
            Check("onnxruntime", True, f"onnxruntime {onnxruntime.__version__} in this Python"),
        ]

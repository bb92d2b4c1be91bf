"""The small interface every backend implements.

Code above ``backends/`` speaks to a database only through this class: it runs
statements (values as bound parameters), opens transactions, and asks the backend
to make a model version callable and to score inserts into a table. Capability
flags say what a backend can do; nothing above asks which backend it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlglot import exp

from indb.errors import DatabaseError
from indb.identifiers import Quoted, literal, quote
from indb.sql import render, statement
from indb.udfs.signature import Signature


@dataclass(frozen=True)
class ModelRef:
    """What a backend needs to make one model version callable."""

    model: str
    version: int
    sha256: str
    signature: Signature
    content_hash: str | None = None  # registry.content_hash, recorded by deployments


@dataclass(frozen=True)
class FeatureJoin:
    """Stored features joined to request rows before scoring (``deploy(features_from=...)``):
    per latest-values table, its entity keys and the features taken from it."""

    tables: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
    schema: str  # triggers may run with another search_path: tables are schema-qualified
    fail: str = "error"  # the backend's fail_function: an entity without stored features fails

    @property
    def columns(self) -> tuple[str, ...]:
        """The features, in the order the prediction rows record them."""
        return tuple(f for _, _, features in self.tables for f in features)

    def source(self, dialect: str, rows: str | exp.Expression) -> str:
        """``rows`` (a table name, or a parenthesized query with its alias) with the features,
        as a relation named ``indb_request``, built as one tree and rendered once."""
        return self.relation(dialect, rows).sql(dialect=dialect)

    def relation(self, dialect: str, rows: str | exp.Expression) -> exp.Subquery:
        """The tree :meth:`source` renders."""
        request = exp.select("*").from_(rows, dialect=dialect).subquery("r")
        query = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("r"))).from_(request)
        for n, (table, keys, features) in enumerate(self.tables, start=1):
            alias = f"f{n}"
            matches = [exp.column(k, alias, quoted=True).eq(exp.column(k, "r", quoted=True)) for k in keys]
            on = exp.and_(*matches) if matches else exp.true()  # no keys: the one row
            stored = exp.Table(
                this=exp.to_identifier(table, quoted=True), db=exp.to_identifier(self.schema, quoted=True)
            )
            query = query.join(stored.as_(alias), on=on, join_type="left")
            query = query.select(*(exp.column(f, alias, quoted=True) for f in features))
        return query.where(self._missing(dialect)).subquery("indb_request")

    def _missing(self, dialect: str) -> exp.Expression:
        """A condition that raises "no stored features for <key>=<value>" for a request row
        whose (non-NULL) keys match no row of a latest-values table; CASE keeps the failing
        call lazy on every engine."""
        checks = []
        for n, (table, keys, _) in enumerate(self.tables, start=1):
            lead = "ScoringError: no stored features" + (" for " if keys else "")
            message: exp.Expression = exp.Literal.string(lead)
            for i, key in enumerate(keys):
                label = f"{', ' if i else ''}{key}="
                value = exp.cast(exp.column(key, "r", quoted=True), exp.DataType.build("VARCHAR"))
                message = exp.DPipe(
                    this=exp.DPipe(this=message, expression=exp.Literal.string(label)), expression=value
                )
            message = exp.DPipe(this=message, expression=exp.Literal.string(f" (feature table {table})"))
            absent = exp.and_(  # _indb_seq: NOT NULL in every latest-values row
                exp.column("_indb_seq", f"f{n}", quoted=True).is_(exp.null()),
                *(exp.not_(exp.column(k, "r", quoted=True).is_(exp.null())) for k in keys),
            )
            failing = exp.Anonymous(this=self.fail, expressions=[message]).is_(exp.null())
            checks.append(exp.Case(ifs=[exp.If(this=absent, true=failing)], default=exp.true()))
        return exp.and_(*checks)


@dataclass(frozen=True)
class ScoringTarget:
    """Where a deployment's inserts go and what scores them."""

    table: str
    model: ModelRef
    runtime: str
    probability_columns: tuple[str, ...]  # one per class, in class order; empty for regression
    mode: str = "bulk"  # "bulk": statement trigger into <table>_predictions; "row": into the row
    compiled: Any = None  # the CompiledModel when runtime == "sql"
    features: FeatureJoin | None = None  # stored features to join, recorded with each prediction
    # Challengers (indb.lifecycle.challengers): the champion's target lists them; each arm's
    # own target (:meth:`arms`) has its role, whether it is served and the rows it scores.
    challengers: tuple[Arm, ...] = ()
    role: str = "champion"
    served: bool = True
    where: exp.Expression | None = None  # which request rows (by id) this arm scores
    # indb.explanations.Plan when the deployment writes <table>_explanations (the champion's
    # served rows only; challengers' arms have none)
    explain: Any = None

    def source(self, dialect: str, rows: str | exp.Expression) -> str:
        """What the scoring statement reads: the request rows, with their stored features."""
        if self.features is None and self.where is None:
            return rows if isinstance(rows, str) else rows.sql(dialect=dialect)
        return self.relation(dialect, rows).sql(dialect=dialect)

    def relation(self, dialect: str, rows: str | exp.Expression) -> exp.Expression:
        """:meth:`source` as a tree to build a statement around (``rows`` parsed if text)."""
        if self.where is not None:
            chosen = exp.select("*").from_(relation(rows, dialect)).where(self.where.copy())
            rows = chosen.subquery("indb_arm")
        if self.features is not None:
            return self.features.relation(dialect, rows)
        return relation(rows, dialect)

    @property
    def recorded(self) -> tuple[str, ...]:
        return () if self.features is None else self.features.columns

    @property
    def split(self) -> list[tuple[int, int]]:
        """The bucket ranges split challengers serve (the champion scores the other rows)."""
        return [a.buckets for a in self.challengers if a.buckets is not None]

    def arms(self) -> list[ScoringTarget]:
        """The champion (without the rows split challengers serve) and each challenger, as the
        targets that score them."""
        from dataclasses import replace

        from indb.lifecycle.challengers import in_ranges

        key = exp.column("id")
        split = self.split
        champion = replace(self, challengers=(), where=exp.not_(in_ranges(key, split)) if split else None)
        result = [champion]
        for arm in self.challengers:
            result.append(
                replace(
                    self,
                    model=arm.model,
                    runtime=arm.runtime,
                    compiled=arm.compiled,
                    probability_columns=arm.probability_columns,
                    challengers=(),
                    role="challenger",
                    explain=None,
                    served=arm.buckets is not None,
                    where=None if arm.buckets is None else in_ranges(key, [arm.buckets]),
                )
            )
        return result


@dataclass(frozen=True)
class Arm:
    """A challenger as a backend scores it: its version, runtime, probability columns (of its
    own classes, among the table's) and, for a split challenger, the buckets it serves."""

    model: ModelRef
    runtime: str
    probability_columns: tuple[str, ...]
    compiled: Any = None
    buckets: tuple[int, int] | None = None


def relation(rows: str | exp.Expression, dialect: str) -> exp.Expression:
    """``rows`` (a table name, or a parenthesized query, with or without an alias) as a tree
    for a FROM clause."""
    if isinstance(rows, exp.Expression):
        return rows
    return exp.select("*").from_(rows, dialect=dialect).args["from_"].this


@dataclass(frozen=True)
class Check:
    """One line of ``indb doctor``: what was checked, whether it is fine, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


class Backend(ABC):
    name: str
    dialect: str
    supports_python_udfs: bool = False
    supports_statement_triggers: bool = False
    scoring_modes: tuple[str, ...] = ("bulk",)
    runs_onnx: bool = True  # onnxruntime can run inside this database
    fail_function: str = "error"  # raises its text argument from inside an SQL expression
    trigger_functions: bool = False  # triggers call a function (PostgreSQL) rather than hold SQL
    supports_procedures: bool = False  # stored procedures a scheduler can CALL with no client
    # Point-in-time joins: ASOF joins (True) or LATERAL ... ORDER BY ts DESC LIMIT 1 on an
    # index over (keys, ts DESC) that the feature store creates (False).
    asof_join: bool = False
    nested_types: bool = False  # columns may hold STRUCT/LIST values (a DataFrame's dicts/lists)
    temp_schema: str = "temp"  # where this session's temporary tables are, to name them fully
    supports_notify: bool = False  # NOTIFY channels (alert sinks of kind "notify")
    # The server checks who may change a stage (session roles, SECURITY DEFINER functions);
    # False: the client API enforces it and records the operating-system user (single-user).
    enforces_roles: bool = False

    url: str
    user: str

    # -- SQL text -----------------------------------------------------------------------------
    def quote(self, *parts: str) -> Quoted:
        """A validated name (possibly schema-qualified), quoted for this dialect."""
        return quote(*parts, dialect=self.dialect)

    def literal(self, text: str) -> Quoted:
        """A string literal, for DDL positions that take no bound parameters."""
        return literal(text, self.dialect)

    def scalar_function(self, name: str) -> Quoted:
        """The name SQL calls a function made by :meth:`register_scalar` by."""
        return self.quote(name)

    def render(self, file: str, statement: str, /, **slots: Quoted) -> str:
        """A statement from ``sql/<file>.sql`` with its slots filled, ready for this dialect."""
        return render(file, statement, self.dialect, **slots)

    # -- statements ---------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: dict | Sequence | None = None) -> None:
        """Run one statement whose result is not needed."""

    @abstractmethod
    def query(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame:
        """Run one statement and return its rows."""

    @abstractmethod
    def rows(self, sql: str, params: dict | Sequence | None = None) -> list[tuple]:
        """Run one statement and return its rows as tuples (cheap for catalog look-ups)."""

    @abstractmethod
    def run_user_sql(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame | None:
        """Run SQL a user wrote: rows as a DataFrame when it returns any, else None."""

    def script(self, text: str, *, transpile: bool = False) -> None:
        """Run several statements; ``transpile`` rewrites DuckDB-dialect text (migrations)."""
        from indb.sql import split_script
        from indb.sql import transpile as rewrite

        for part in split_script(text):
            self.execute(rewrite(part, self.dialect) if transpile and self.dialect != "duckdb" else part)

    def read_only_catalog(self, latest: int) -> int | None:
        """The catalog's version when this connection may not install or upgrade it (checked
        without DDL; an error says what to grant), else None. None by default."""
        return None

    def install_runtime(self) -> None:
        """Install or upgrade server-side code the backend needs (run at connect, after the
        catalog migrations, in their transaction). Nothing by default."""
        return None

    def lock_catalog(self) -> None:
        """Serialise catalog installs and upgrades between connections (in a transaction, held
        to its end). Nothing by default: a DuckDB file has one writing process."""
        return None

    # -- switching versions under concurrent inserts --------------------------------------------
    def require_deployer(self, action: str) -> None:
        """Refuse ``action`` (deploying, undeploying, a humility rule: each creates triggers or
        functions that run as indb's owner) before it starts, for a connection that could not
        finish it. Anyone who opens the database may, by default."""
        return None

    def lock_deployment(self, table: str, *, ddl: bool) -> None:
        """Taken first by a deploy's transaction (held to its end): inserts under way finish,
        later ones wait for the switch. ``ddl``: the deploy also changes the request table.
        Nothing by default (one writing process)."""
        return None

    def retrying(self, table: str, run: Callable[[], Any]) -> Any:
        """``run()``: a verb that changes ``table``'s triggers in a transaction of its own
        (deploy, switch, undeploy). Where another transaction's uncommitted change of those
        triggers makes such a change fail at once instead of waiting for a lock, the backend
        runs it again for a while. Here: once (locks wait)."""
        return run()

    def scoring_ddl(self, target: ScoringTarget, previous: str | None) -> bool:
        """Whether :meth:`scoring_sql` changes triggers on the request table."""
        return True

    # New request tables get PRIMARY KEY (id) (sql/<dialect>/deploy.sql add_key), prediction
    # tables a unique index on id over their served rows (add_served_index).
    keyed_ids = False
    # Deployment tables get indexes on their times (scored_at, observed_at) so that a monitor
    # run reads its windows, not the whole history (DuckDB's zone maps do this unasked).
    time_indexes = False

    # True: rows already in a table are scored by :meth:`backfill` after the deploy commits
    # (in batches, outside the switch's lock); False: by ``scoring_sql(..., backfill=True)``.
    separate_backfill = False

    def backfill(self, target: ScoringTarget) -> int:
        """Score the rows of ``target.table`` that have no prediction; the number scored."""
        raise NotImplementedError

    def register_scalar(self, name: str, function, arguments: list[str], returns: str, source: str) -> None:
        """Make a Python scalar function callable from SQL as ``name``: ``function`` in this
        process, or ``source`` (a module defining it) inside the server. Arguments and result
        are DOUBLE or BIGINT; NULL in, NULL out."""
        raise NotImplementedError(f"{self.name} cannot run Python functions in SQL")

    def health(self) -> list[Check]:
        """What ``indb doctor`` reports about this database and its server."""
        return []

    @contextmanager
    @abstractmethod
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested calls join the outer transaction."""

    def statement_workers(self, requested: int | None = None) -> int:
        """How many statements :meth:`workers` may run at once for this connection's current
        transaction (``requested``, else the backend's default); 1 (always, here) means one
        after another on this connection."""
        return 1

    def interrupt(self) -> None:
        """Stop the statements running on this connection and on its :meth:`workers` (a job's
        timeout); the server's statement_timeout does it where there is one."""
        return None

    @contextmanager
    def workers(self, count: int, shared: str, params: Sequence) -> Iterator[Any]:
        """This connection and ``count - 1`` of their own, to run independent statements at
        once: the block gets an object whose ``run(statement, params, collect,
        collect_params)`` runs ``statement`` on a free one: on this connection (in its
        transaction; returns None), or in a transaction of its own, returning what ``collect``
        selects then (an Arrow table: the rows it wrote) and rolling back, so nothing stays
        written there; ``rows`` is the shared table's row count, ``interrupt()`` stops the
        statements running. ``shared`` is a ``CREATE TEMPORARY TABLE name AS SELECT ...``
        (with ``params``) that every statement, this connection's too, reads as ``name``."""
        raise NotImplementedError(f"{type(self).__name__} runs statements one after another")
        yield

    @abstractmethod
    def write_table(self, table: str, frame: pd.DataFrame, *, replace: bool) -> None:
        """Create a table from a DataFrame (or append to it unless ``replace``)."""

    @abstractmethod
    def table_columns(self, table: str) -> dict[str, str] | None:
        """Column name -> SQL type of a table in the default schema, None if there is none."""

    @abstractmethod
    def query_columns(self, sql: str) -> dict[str, str]:
        """Column name -> SQL type (DuckDB's names) of what a SELECT statement returns."""

    @contextmanager
    @abstractmethod
    def staged(self, data: Any) -> Iterator[Quoted]:
        """A DataFrame or Arrow table readable in SQL for the duration of the block."""

    @abstractmethod
    def translate(self, error: Exception) -> Exception:
        """The indb error for a driver exception (called inside ``except`` blocks)."""

    @abstractmethod
    def close(self) -> None: ...

    def current_schema(self) -> str:
        """The schema unqualified names resolve to: where request tables, feature tables and
        their triggers live, and what trigger and monitor statements qualify them with."""
        ((schema,),) = self.rows(statement("triggers", "current_schema", self.dialect))
        if schema is None:
            raise DatabaseError(
                "no current schema: the search_path names no schema that exists (SET search_path TO ...)"
            )
        return schema

    # -- triggers -----------------------------------------------------------------------------
    def trigger_sql(
        self,
        trigger: str,
        table: Quoted,
        body: Sequence[str] | None,
        *,
        function: Quoted | None = None,
        row: bool = False,
        definer: bool = False,
        guard: tuple[str, str] | None = None,
        arguments: Sequence[Quoted] = (),
        before: bool = False,
        attach: bool = True,
        skippable: bool = False,
    ) -> list[str]:
        """Statements that make every INSERT into ``table`` run ``body`` (statements rendered
        for this dialect) in the insert's transaction: deployments, feature sets and humility
        rules all build their triggers here. Statement level (default): AFTER INSERT, the
        inserted rows readable as ``new_rows`` (``before``: BEFORE INSERT, no rows); ``row``:
        BEFORE INSERT, per row as ``NEW``.

        Where triggers call a function (:attr:`trigger_functions`), ``function`` names it:
        ``body`` None means it exists already (shared by many tables) and only the trigger,
        passing ``arguments``, is made; ``definer`` makes it SECURITY DEFINER with a pinned
        search_path (every object in ``body`` schema-qualified); ``guard`` = (schema, table)
        makes it refuse to run for any other table and raise errors from itself; ``attach``
        False replaces the function only (its trigger is there already). ``skippable``: each
        statement of ``body`` reads the inserted rows as :attr:`inserted_rows` only, so
        :meth:`insert_rows` may skip the trigger and run the statement itself.

        Here the trigger holds its statement, so each statement of ``body`` gets its own
        trigger ``trigger``, ``trigger_2``, ... in order, made on every call."""
        if row or before or body is None:
            raise NotImplementedError(
                f"{self.name} triggers hold their statements, fired after each statement"
            )
        return [
            self.render(
                "triggers",
                "create_statement_trigger",
                trigger=self.quote(name),
                table=table,
                body=Quoted(text),
            )
            for name, text in zip(statement_trigger_names(trigger, body), body, strict=True)
        ]

    @property
    def inserted_rows(self) -> Quoted:
        """The relation a ``skippable`` trigger statement reads the inserted rows by."""
        return Quoted("new_rows")

    def insert_rows(self, table: str, insert: str, *, rows: int | None = None) -> int:
        """Run ``insert`` (one INSERT ... SELECT into ``table``, inside a transaction, of
        ``rows`` rows when known) so that its rows are scored as any insert's; the rows
        inserted. Here: as it is, the triggers fire."""
        ((count,),) = self.rows(insert)
        return int(count)

    def drop_trigger_sql(self, trigger: str, table: Quoted) -> str:
        return self.render("triggers", "drop_trigger", trigger=self.quote(trigger), table=table)

    # -- models -------------------------------------------------------------------------------
    @abstractmethod
    def prepare_model(self, ref: ModelRef) -> None:
        """Make one version's runtime available on this connection (e.g. register its UDF)."""

    @abstractmethod
    def model_sql(self, ref: ModelRef, *, default: bool) -> list[str]:
        """Statements creating ``predict_<model>_v<N>`` (and, if default, ``predict_<model>``)."""

    @abstractmethod
    def scoring_sql(self, target: ScoringTarget, *, backfill: bool, previous: str | None) -> list[str]:
        """Statements that score every insert into ``target.table`` (and, with backfill, the
        rows already there without a prediction). They run after ``indb.deployments`` names
        the new version; ``previous`` is the runtime of an earlier deploy, if any."""

    @abstractmethod
    def compiled_model_sql(self, ref: ModelRef, compiled: Any, *, default: bool) -> list[str]:
        """Statements that make the compiled SQL of a version its ``predict_*`` functions."""

    def compiled_helpers(self, ref: ModelRef | None) -> tuple[str, str] | None:
        """(schema, name) of the functions that share a compiled model's sub-expressions, for a
        version (None: temporary ones for this session), or None where the SQL shares them
        by itself (DuckDB and Spark lambdas)."""
        return None

    def compiled_helper_sql(self, compiled: Any, helpers: tuple[str, str] | None) -> list[str]:
        """Statements creating the functions ``helpers`` names (see :meth:`compiled_helpers`)."""
        return []

    # Explanations that are not SQL run in this process (True: a Python scalar function the
    # trigger calls, registered by :meth:`prepare_explainer`), else inside the server.
    explains_in_process = False

    def prepare_explainer(self, ref: ModelRef, build) -> None:
        """Make one version's explainer (``build()`` makes it) callable by its triggers."""
        return None

    def explain_function_sql(self, ref: ModelRef, plan: Any, *, default: bool) -> list[str]:
        """Statements creating ``explain_<model>_v<N>`` (and, if default, ``explain_<model>``):
        one row's contributions computed in SQL (a plan with terms, indb.explanations)."""
        return []

    @abstractmethod
    def unscoring_sql(self, table: str) -> list[str]:
        """Statements that stop scoring inserts into ``table``."""


def statement_trigger_names(trigger: str, body: Sequence[str]) -> list[str]:
    """The triggers holding ``body``'s statements, one each in order: ``trigger``,
    ``trigger_2``, ... (backends whose triggers hold their statement)."""
    return [trigger, *(f"{trigger}_{n}" for n in range(2, len(body) + 1))]

"""The point-in-time join: one builder for every backend, as a sqlglot tree.

For each spine row and each feature set it takes the latest feature row of the spine's
entity with event time <= the spine's time (and, with a created time and the default
``filter_by_created_time=True``, created by then), ordered by (event time, created time,
ingestion order); a row older than the ttl counts as missing. Every spine row comes out once,
in spine order, with NULLs where nothing matched. With ``filter_by_created_time=False``
(Feast's default) the created time only orders rows: a backfill created after the spine's
time wins over the row it restates. A NULL created time counts as created at the event time.

Spine times are converted to each feature set's time type with naive times read as UTC
(:mod:`indb.feature_store.times`), never through the session's time zone.

* ASOF backends (DuckDB): ``ASOF LEFT JOIN`` on the keys and ``(time, +inf) >= (event time,
  _indb_seq)``, so rows that tie on time resolve to the last ingested. With a created time
  the visible rows depend on the spine's time in two ways; a window first computes, per row
  in order of ``greatest(event, created)``, the latest row visible from then on, and the
  ASOF join picks that.
* Other backends (PostgreSQL): ``LEFT JOIN LATERAL (... ORDER BY time DESC, ..., _indb_seq
  DESC LIMIT 1)`` over the index on (keys, time DESC, ...) that the feature set created.

Names reach the tree as quoted identifiers and values (ttl, cut-off) as bound parameters;
the text is produced once, by ``.sql(dialect=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from indb.feature_store import times
from indb.feature_store.sets import FeatureSet
from indb.feature_store.trees import SEQ, column, desc, order_by, param, table_node

ROW = "_indb_row"
BIGGEST = 9223372036854775807


@dataclass(frozen=True)
class Selection:
    """Features taken from one feature set version: (stored name, output name) pairs."""

    feature_set: FeatureSet
    features: tuple[tuple[str, str], ...]
    ttl_seconds: float | None = None
    pinned: bool = True  # named with @version; else the newest version
    time_ties: bool = True  # rows may tie on entity and event time: order by _indb_seq too
    created_filter: bool = True  # a row counts only once created (False: Feast's default)


@dataclass
class JoinSQL:
    text: str
    params: dict = field(default_factory=dict)
    tree: exp.Query | None = None


def _struct(**fields: exp.Expression) -> exp.Struct:
    """DuckDB's ``{'a': x, 'b': y}``: compares field by field, in order."""
    return exp.Struct(
        expressions=[exp.PropertyEQ(this=exp.to_identifier(k), expression=v) for k, v in fields.items()]
    )


def build(
    backend,
    spine: exp.Expression,
    spine_columns: dict[str, str],
    spine_time: str,
    selections: list[Selection],
    *,
    cutoff_param: str | None = None,
    keep_row: bool = False,
) -> JoinSQL:
    """The join over ``spine`` (a table or an aliased subquery); ``spine_columns`` maps its
    columns to their types; ``keep_row`` adds the spine's row number as column ``_indb_row``."""
    params: dict = {}
    numbered = exp.select(exp.Star(), exp.alias_(exp.Window(this=exp.RowNumber()), ROW, quoted=True))
    numbered = numbered.from_(spine)
    if cutoff_param:
        numbered = numbered.where(exp.LTE(this=column(spine_time), expression=param(cutoff_param)))
    outputs: list[exp.Expression] = [column(c, "spine") for c in spine_columns]
    if keep_row:
        outputs.insert(0, column(ROW, "spine"))
    query = exp.select(*outputs).from_(exp.to_table("spine"))
    time = column(spine_time, "spine")
    for n, selection in enumerate(selections, start=1):
        fs = selection.feature_set
        alias = f"f{n}"
        ttl = None
        if selection.ttl_seconds is not None:
            params[f"ttl_{n}"] = int(round(selection.ttl_seconds * 1_000_000))
            ttl = param(f"ttl_{n}")
        at = times.convert(time, spine_columns[spine_time], fs.time_type)
        if backend.asof_join:
            joins, event = _asof(fs, alias, time, at, selection)
            fresh = None
            if ttl is not None:
                micros = exp.Anonymous(this="to_microseconds", expressions=[exp.cast(ttl, "BIGINT")])
                fresh = exp.GTE(this=event, expression=exp.Sub(this=at.copy(), expression=micros))
            for stored, output in selection.features:
                value: exp.Expression = column(stored, alias)
                if fresh is not None:
                    value = exp.Case(ifs=[exp.If(this=fresh.copy(), true=value)])
                query = query.select(exp.alias_(value, output, quoted=True))
        else:
            joins = [_lateral(fs, alias, at, selection, ttl)]
            query = query.select(
                *(exp.alias_(column(c, alias), o, quoted=True) for c, o in selection.features)
            )
        for join in joins:
            query = query.join(join)
    query = query.order_by(column(ROW, "spine"))
    query = query.with_("spine", as_=numbered, materialized=True if not backend.asof_join else None)
    return JoinSQL(query.sql(dialect=backend.dialect), params, query)


def _keys_equal(fs: FeatureSet, left: str, right: str) -> list[exp.Expression]:
    return [exp.EQ(this=column(k, left), expression=column(k, right)) for k in fs.keys]


def _asof(
    fs: FeatureSet, alias: str, time: exp.Expression, at: exp.Expression, selection: Selection
) -> tuple[list[exp.Join], exp.Expression]:
    """The ASOF LEFT JOIN(s) for one feature set, and its event-time expression.
    Without rows that tie on entity and time the inequality compares times alone (faster)."""
    table = table_node(fs.table)
    event = column(fs.event_time, alias)
    if fs.created_time is None and not selection.time_ties:
        on = exp.and_(*_keys_equal(fs, "spine", alias), exp.GTE(this=at, expression=event.copy()))
        return [exp.Join(this=table.as_(alias, quoted=True), side="LEFT", method="ASOF", on=on)], event
    if fs.created_time is None:
        probe = exp.Case(
            ifs=[
                exp.If(
                    this=exp.not_(time.copy().is_(exp.null())),
                    true=_struct(t=at, s=exp.Literal.number(BIGGEST)),
                )
            ]
        )
        stored = _struct(t=event.copy(), s=column(SEQ, alias))
        on = exp.and_(*_keys_equal(fs, "spine", alias), exp.GTE(this=probe, expression=stored))
        return [exp.Join(this=table.as_(alias, quoted=True), side="LEFT", method="ASOF", on=on)], event
    # With a created time: per entity, in order of the moment a row becomes visible, the
    # latest row visible from then on; the ASOF join takes the last moment <= the spine time.
    row_event = column(fs.event_time)
    visible: exp.Expression = row_event
    if selection.created_filter:
        created = exp.Coalesce(this=column(fs.created_time), expressions=[row_event.copy()])
        visible = exp.Greatest(this=row_event.copy(), expressions=[created], ignore_nulls=True)
    order = order_by(fs)
    latest = exp.Window(
        this=exp.Max(this=_struct(**{f"c{i}": o for i, o in enumerate(order)})),
        partition_by=[column(k) for k in fs.keys],
        order=exp.Order(expressions=[exp.Ordered(this=visible.copy())]),
        spec=exp.WindowSpec(kind="RANGE", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"),
    )
    winners = (
        exp.select(
            *(column(k) for k in fs.keys),
            exp.alias_(visible, "_indb_visible", quoted=True),
            exp.alias_(latest, "_indb_winner", quoted=True),
        )
        .from_(table)
        .subquery(f"w{alias}", copy=False)
    )
    winners.args["alias"].this.set("quoted", True)
    on = exp.and_(
        *_keys_equal(fs, "spine", f"w{alias}"),
        exp.GTE(this=at, expression=column("_indb_visible", f"w{alias}")),
    )
    seq = exp.Dot(
        this=column("_indb_winner", f"w{alias}"), expression=exp.to_identifier(f"c{len(order) - 1}")
    )
    rows = exp.Join(
        this=table_node(fs.table).as_(alias, quoted=True),
        side="LEFT",
        on=exp.EQ(this=column(SEQ, alias), expression=seq),
    )
    return [exp.Join(this=winners, side="LEFT", method="ASOF", on=on), rows], event


def _lateral(
    fs: FeatureSet, alias: str, at: exp.Expression, selection: Selection, ttl: exp.Expression | None
) -> exp.Join:
    event = column(fs.event_time, "h")
    conditions = [*_keys_equal(fs, "h", "spine"), exp.LTE(this=event, expression=at)]
    if fs.created_time and selection.created_filter:
        created = exp.Coalesce(this=column(fs.created_time, "h"), expressions=[event.copy()])
        conditions.append(exp.LTE(this=created, expression=at.copy()))
    if ttl is not None:
        seconds = exp.Div(this=exp.cast(ttl, "DOUBLE"), expression=exp.Literal.number(1_000_000))
        zero = [exp.Literal.number(0)] * 6
        interval = exp.Anonymous(this="make_interval", expressions=[*zero, seconds])
        conditions.append(exp.GTE(this=event.copy(), expression=exp.Sub(this=at.copy(), expression=interval)))
    columns = dict.fromkeys(c for c, _ in selection.features)
    latest = (
        exp.select(*(column(c, "h") for c in columns))
        .from_(table_node(fs.table).as_("h", quoted=True))
        .where(exp.and_(*conditions))
        .order_by(*(desc(o) for o in order_by(fs, "h")))
        .limit(1)
    )
    lateral = exp.Lateral(
        this=latest.subquery(), alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )
    return exp.Join(this=lateral, side="LEFT", on=exp.true())

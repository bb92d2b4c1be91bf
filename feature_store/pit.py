"""The point-in-time join: one builder for every backend.

For each spine row and each feature set it takes the latest feature row of the spine's
entity with event time <= the spine's time (and, with a created time, created by then),
ordered by (event time, created time, ingestion order); a row older than the ttl counts as
missing. Every spine row comes out once, in spine order, with NULLs where nothing matched.

* ASOF backends (DuckDB): ``ASOF LEFT JOIN`` on the keys and ``(time, +inf) >= (event time,
  _indb_seq)``, so rows that tie on time resolve to the last ingested. With a created time
  the visible rows depend on the spine's time in two ways; a window first computes, per row
  in order of ``greatest(event, created)``, the latest row visible from then on, and the
  ASOF join picks that.
* Other backends (PostgreSQL): ``LEFT JOIN LATERAL (... ORDER BY time DESC, ..., _indb_seq
  DESC LIMIT 1)`` over the index on (keys, time DESC, ...) that the feature set created.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from indb.feature_store.sets import SEQ, FeatureSet, order_columns
from indb.identifiers import Quoted

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


@dataclass
class JoinSQL:
    text: str
    params: dict = field(default_factory=dict)


def build(
    backend,
    spine: Quoted,
    spine_columns: list[str],
    spine_time: str,
    selections: list[Selection],
    *,
    cutoff_param: str | None = None,
    keep_row: bool = False,
) -> JoinSQL:
    """The join; ``keep_row`` adds the spine's row number as column ``_indb_row``."""
    q = backend.quote
    params: dict = {}
    where = f" WHERE {q(spine_time)} <= ${cutoff_param}" if cutoff_param else ""
    spine_sql = (
        f"WITH spine AS (SELECT *, row_number() OVER () AS {ROW} FROM {spine}{where})"
        if backend.asof_join
        else f"WITH spine AS MATERIALIZED (SELECT *, row_number() OVER () AS {ROW} FROM {spine}{where})"
    )
    outputs = [f"spine.{q(c)}" for c in spine_columns]
    if keep_row:
        outputs.insert(0, f"spine.{ROW}")
    joins = []
    time = f"spine.{q(spine_time)}"
    for n, selection in enumerate(selections, start=1):
        fs = selection.feature_set
        alias = f"f{n}"
        ttl_param = f"ttl_{n}"
        if selection.ttl_seconds is not None:
            params[ttl_param] = int(round(selection.ttl_seconds * 1_000_000))
        if backend.asof_join:
            join, event = _asof(backend, fs, alias, time, selection.time_ties)
            ttl = (
                f"{event} >= CAST({time} AS {fs.time_type}) - to_microseconds(CAST(${ttl_param} AS BIGINT))"
                if selection.ttl_seconds is not None
                else None
            )
            for column, output in selection.features:
                value = f"{alias}.{q(column)}"
                outputs.append(
                    f"CASE WHEN {ttl} THEN {value} END AS {q(output)}" if ttl else f"{value} AS {q(output)}"
                )
        else:
            join = _lateral(backend, fs, alias, time, selection, ttl_param)
            outputs += [f"{alias}.{q(column)} AS {q(output)}" for column, output in selection.features]
        joins.append(join)
    text = (
        f"{spine_sql}\nSELECT {', '.join(outputs)}\nFROM spine\n"
        + "\n".join(joins)
        + f"\nORDER BY spine.{ROW}"
    )
    return JoinSQL(text, params)


def _asof(backend, fs: FeatureSet, alias: str, time: str, time_ties: bool = True) -> tuple[str, str]:
    """An ASOF LEFT JOIN for one feature set; returns it and its event-time expression.
    Without rows that tie on entity and time the inequality compares times alone (faster)."""
    q = backend.quote
    spine_time = f"CAST({time} AS {fs.time_type})"
    on_keys = " AND ".join(f"spine.{q(k)} = {alias}.{q(k)}" for k in fs.keys)
    keys = ", ".join(q(k).text for k in fs.keys)
    if fs.created_time is None and not time_ties:
        join = (
            f"ASOF LEFT JOIN {q(fs.table)} AS {alias}\n  ON {on_keys} "
            f"AND {spine_time} >= {alias}.{q(fs.event_time)}"
        )
        return join, f"{alias}.{q(fs.event_time)}"
    if fs.created_time is None:
        probe = f"CASE WHEN {time} IS NOT NULL THEN {{'t': {spine_time}, 's': {BIGGEST}}} END"
        join = (
            f"ASOF LEFT JOIN {q(fs.table)} AS {alias}\n  ON {on_keys} "
            f"AND {probe} >= {{'t': {alias}.{q(fs.event_time)}, 's': {alias}.{SEQ}}}"
        )
        return join, f"{alias}.{q(fs.event_time)}"
    event, created = q(fs.event_time), q(fs.created_time)
    visible = f"greatest({event}, coalesce({created}, {event}))"
    order = ", ".join(f"'c{i}': {o}" for i, o in enumerate(order_columns(fs)))
    winners = (
        f"(SELECT {keys}, {visible} AS _indb_visible, max({{{order}}}) OVER (PARTITION BY {keys} "
        f"ORDER BY {visible} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS _indb_winner "
        f"FROM {q(fs.table)})"
    )
    last = len(order_columns(fs)) - 1
    join = (
        f"ASOF LEFT JOIN {winners} AS w{alias}\n  ON {on_keys.replace(f'{alias}.', f'w{alias}.')} "
        f"AND {spine_time} >= w{alias}._indb_visible\n"
        f"LEFT JOIN {q(fs.table)} AS {alias} ON {alias}.{SEQ} = w{alias}._indb_winner.c{last}"
    )
    return join, f"{alias}.{event}"


def _lateral(backend, fs: FeatureSet, alias: str, time: str, selection: Selection, ttl_param: str) -> str:
    q = backend.quote
    event = f"h.{q(fs.event_time)}"
    conditions = [f"h.{q(k)} = spine.{q(k)}" for k in fs.keys] + [f"{event} <= {time}"]
    if fs.created_time:
        conditions.append(f"coalesce(h.{q(fs.created_time)}, {event}) <= {time}")
    if selection.ttl_seconds is not None:
        conditions.append(f"{event} >= {time} - make_interval(secs => ${ttl_param}::float8 / 1000000)")
    columns = ", ".join(f"h.{q(c)}" for c in dict.fromkeys(c for c, _ in selection.features))
    order = ", ".join(f"{o} DESC" for o in order_columns(fs, "h."))
    return (
        f"LEFT JOIN LATERAL (SELECT {columns} FROM {q(fs.table)} AS h WHERE {' AND '.join(conditions)} "
        f"ORDER BY {order} LIMIT 1) AS {alias} ON true"
    )

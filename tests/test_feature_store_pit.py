"""Point-in-time training sets against a brute-force Python reference, on both backends.

Random data with ties on time (between feature rows, within and across ingestion batches,
and between feature and spine times), entities without history, duplicate spine rows, a
NULL spine time, ttl and created time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

START = datetime(2024, 1, 1)
HOUR = timedelta(hours=1)


def _features(rng, rows: int, entities: int, with_created: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "cid": rng.integers(0, entities, rows).astype(np.int64),
            # few distinct hours: many rows tie on (cid, ts)
            "ts": [START + int(h) * HOUR for h in rng.integers(0, 30, rows)],
            "amount": rng.normal(0, 1, rows).round(6),
            "city": rng.choice(["paris", "rome", "oslo", None], rows),
        }
    )
    if with_created:
        frame["created"] = [
            t + int(d) * HOUR for t, d in zip(frame.ts, rng.integers(0, 8, rows), strict=True)
        ]
        frame = frame[["cid", "ts", "created", "amount", "city"]]
    return frame


def _spine(rng, rows: int, entities: int) -> pd.DataFrame:
    spine = pd.DataFrame(
        {
            "cid": rng.integers(0, entities + 5, rows).astype(np.int64),  # some never seen
            "event_time": [START + int(h) * HOUR for h in rng.integers(-2, 40, rows)],
            "label": rng.integers(0, 2, rows).astype(np.int64),
        }
    )
    spine = pd.concat([spine, spine.iloc[[3, 3, 7]]], ignore_index=True)  # duplicate spine rows
    spine.loc[5, "event_time"] = pd.NaT
    return spine


def reference(batches: list[pd.DataFrame], spine: pd.DataFrame, ttl: float | None, with_created: bool):
    """The latest row by (ts, created, ingestion order) with ts <= t (created <= t), within ttl."""
    history: dict[int, list] = {}
    order = 0
    for batch in batches:
        for row in batch.itertuples(index=False):
            order += 1
            created = row.created if with_created else row.ts
            history.setdefault(row.cid, []).append((row.ts, created, order, row.amount, row.city))
    result = []
    for row in spine.itertuples(index=False):
        t = row.event_time
        best = None
        if not pd.isna(t):
            for candidate in history.get(row.cid, []):
                ts, created = candidate[0], candidate[1]
                if ts <= t and created <= t and (best is None or candidate[:3] > best[:3]):
                    best = candidate
        if best is not None and ttl is not None and best[0] < t - timedelta(seconds=ttl):
            best = None
        result.append((None, None) if best is None else (best[3], best[4]))
    return result


def _same(a, b) -> bool:
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA  # noqa: E731
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    return a == b


@pytest.mark.parametrize("with_created", [False, True], ids=["event_time", "created_time"])
@pytest.mark.parametrize("ttl", [None, 5 * 3600.0], ids=["no_ttl", "ttl"])
@pytest.mark.parametrize("seed", [0, 1])
def test_training_set_matches_brute_force(db, seed, ttl, with_created):
    rng = np.random.default_rng(seed)
    entities = 12
    batches = [_features(rng, 150, entities, with_created) for _ in range(3)]
    db.create_entity("customer", keys=["cid"])
    db.create_feature_set(
        "spend",
        "customer",
        source=batches[0],
        event_time="ts",
        created_time="created" if with_created else None,
        ttl=ttl,
    )
    db.ingest("spend", batches[1])
    db.write_table("more_rows", batches[2], replace=True)
    db.ingest("spend", "SELECT * FROM more_rows")  # a query source
    spine = _spine(rng, 300, entities)
    result = db.training_set(spine, ["spend:*"], label="label").frame

    assert len(result) == len(spine)
    assert result.cid.tolist() == spine.cid.tolist()  # spine order, duplicates kept
    assert result.label.tolist() == spine.label.tolist()
    expected = reference(batches, spine, ttl, with_created)
    got = list(zip(result.amount, result.city, strict=True))
    wrong = [
        (i, g, e)
        for i, (g, e) in enumerate(zip(got, expected, strict=True))
        if not (_same(g[0], e[0]) and _same(g[1], e[1]))
    ]
    assert not wrong, f"{len(wrong)} rows differ from the reference, e.g. {wrong[:5]}"
    assert sum(e[0] is None for e in expected) > 0 and sum(e[0] is not None for e in expected) > 0

    # materialized: the same rows, in the same order, with lineage and statistics
    stored = db.training_set(
        spine, ["spend:amount", "spend:city"], label="label", materialize=True, name="tr"
    )
    again = stored.df()
    assert again.amount.tolist() == pytest.approx(result.amount.tolist(), nan_ok=True)
    catalog = db.sql("SELECT name, version, row_count, label FROM indb.training_sets")
    assert catalog.values.tolist() == [["tr", 1, len(spine), "label"]]
    lineage = db.sql("SELECT feature_set, feature_set_version FROM indb.training_set_features")
    assert lineage.values.tolist() == [["spend", 1]]
    assert set(
        db.sql("SELECT feature FROM indb.feature_statistics WHERE scope = 'training_set'").feature
    ) == {"amount", "city", "label"}


def test_training_set_ttl_override_and_several_sets(db):
    rng = np.random.default_rng(5)
    a = _features(rng, 200, 8, False)
    b = _features(rng, 200, 8, False).rename(columns={"amount": "score", "city": "tier"})
    db.create_entity("customer", keys=["cid"])
    db.create_feature_set("spend", "customer", source=a, event_time="ts")
    db.create_feature_set("risk", "customer", source=b, event_time="ts", ttl=3600)
    spine = _spine(rng, 200, 8)
    got = db.training_set(spine, ["spend:amount", "risk:score AS risk_score"], ttl=timedelta(hours=3)).frame
    assert list(got.columns) == ["cid", "event_time", "label", "amount", "risk_score"]
    want_a = reference([a], spine, 3 * 3600, False)
    want_b = reference([b.rename(columns={"score": "amount", "tier": "city"})], spine, 3 * 3600, False)
    assert all(_same(g, e[0]) for g, e in zip(got.amount, want_a, strict=True))
    assert all(_same(g, e[0]) for g, e in zip(got.risk_score, want_b, strict=True))


def test_backends_agree_row_for_row(tmp_path, request):
    """The same data on DuckDB and PostgreSQL gives identical training sets."""
    import indb
    from tests.conftest import pg_database

    dsn = request.getfixturevalue("pg_dsn")
    template = request.getfixturevalue("pg_template")
    import uuid

    import psycopg

    name = f"indb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    rng = np.random.default_rng(11)
    batches = [_features(rng, 300, 20, True) for _ in range(2)]
    spine = _spine(rng, 400, 20)
    frames = []
    try:
        for url in (f"duckdb://{tmp_path}/a.duckdb", pg_database(dsn, name)):
            with indb.connect(url) as db:
                db.create_entity("customer", keys=["cid"])
                db.create_feature_set(
                    "spend", "customer", source=batches[0], event_time="ts", created_time="created"
                )
                db.ingest("spend", batches[1])
                frames.append(db.training_set(spine, ["spend:*"], ttl=6 * 3600).frame)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    duck, pg = frames
    assert len(duck) == len(pg) == len(spine)
    assert all(_same(x, y) for x, y in zip(duck.amount, pg.amount, strict=True))
    assert all(_same(x, y) for x, y in zip(duck.city, pg.city, strict=True))


def test_rows_without_time_ties_take_the_plain_asof_join_and_ties_switch_it_off(db):
    """DuckDB joins on the event time alone while no two rows share an entity and a time
    (checked at ingestion, plain SQL inserts included); a tie brings back the ordering by
    ingestion, and results stay those of the reference throughout."""
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        {
            "cid": np.repeat(np.arange(6, dtype=np.int64), 20),
            "ts": [START + (i % 20) * HOUR for i in range(120)],
            "amount": rng.normal(0, 1, 120).round(6),
            "city": rng.choice(["paris", "rome"], 120),
        }
    )
    db.create_entity("customer", keys=["cid"])
    db.create_feature_set("spend", "customer", source=rows, event_time="ts")
    spine = _spine(rng, 200, 6)

    def check(batches):
        ts = db.training_set(spine, ["spend:*"])
        got = list(zip(ts.frame.amount, ts.frame.city, strict=True))
        want = reference(batches, spine, None, False)
        assert all(_same(g[0], w[0]) and _same(g[1], w[1]) for g, w in zip(got, want, strict=True))
        return ts.sql

    sql = check([rows])
    assert ("_indb_seq" in sql) != db.backend.asof_join  # no ties: plain ASOF on DuckDB
    db.ingest("spend", rows.assign(ts=rows.ts + timedelta(minutes=30)))  # still no ties
    both = [rows, rows.assign(ts=rows.ts + timedelta(minutes=30))]
    assert ("_indb_seq" in check(both)) != db.backend.asof_join
    # a plain SQL insert that ties with an ingested row: not checked yet, so ordered by _indb_seq
    db.sql(
        "INSERT INTO fs_spend_v1 (cid, ts, amount, city) VALUES (2, $ts, 99.5, 'oslo')",
        {"ts": START + 5 * HOUR},
    )
    tie = pd.DataFrame({"cid": [2], "ts": [START + 5 * HOUR], "amount": [99.5], "city": ["oslo"]})
    assert "_indb_seq" in check([*both, tie])
    db.ingest("spend", rows.head(3).assign(ts=START + 100 * HOUR))  # the check now finds the tie
    later = rows.head(3).assign(ts=START + 100 * HOUR)
    assert "_indb_seq" in check([*both, tie, later])


def test_spine_as_ordered_query_and_table_keeps_its_order(db):
    rng = np.random.default_rng(8)
    rows = _features(rng, 300, 10, False)
    db.create_entity("customer", keys=["cid"])
    db.create_feature_set("spend", "customer", source=rows, event_time="ts")
    spine = _spine(rng, 500, 10).dropna()
    db.write_table("spine_rows", spine.assign(position=np.arange(len(spine), dtype=np.int64)), replace=True)
    from_table = db.training_set("spine_rows", ["spend:amount"]).frame
    assert from_table.position.tolist() == list(range(len(spine)))
    query = "SELECT * FROM spine_rows ORDER BY cid DESC, position"
    from_query = db.training_set(query, ["spend:amount"]).frame
    expected = spine.assign(position=np.arange(len(spine))).sort_values(
        ["cid", "position"], ascending=[False, True]
    )
    assert from_query.position.tolist() == expected.position.tolist()
    want = dict(zip(from_table.position, from_table.amount, strict=True))
    assert all(_same(a, want[p]) for p, a in zip(from_query.position, from_query.amount, strict=True))

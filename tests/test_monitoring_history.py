"""A scheduled monitor run on PostgreSQL reads its new windows, not the whole history: the
deployment's tables get indexes on their times, and the query for windows to compute again
(rows scored, or labelled, since the last run) is written so that they answer it. Monitors
created before get the new query on the first run after the upgrade. The speed is measured by
benchmarks/monitor_history.py (RESULTS.md)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

import indb
from tests.conftest import NUMERIC, loan_frame
from tests.test_monitoring_drift import load

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = NUMERIC + ["purpose"]
# The query stored before: one pass over every request row, its prediction and its labels.
WHOLE_HISTORY = """
SELECT min(date_bin(make_interval(secs => $1), {time}, TIMESTAMP '1970-01-01'))
FROM requests_scored AS s WHERE s.observed_at > $2 OR s.scored_at > $2
"""


def _indexes(db, table: str) -> dict[str, str]:
    found = db.sql(
        "SELECT i.relname AS name, am.amname AS kind FROM pg_index AS x "
        "JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_am AS am ON am.oid = i.relam "
        "WHERE x.indrelid = to_regclass($table)",
        {"table": table},
    )
    return dict(zip(found.name, found.kind, strict=True))


def _deployed(db, mixed_pipeline, loans, **options) -> None:
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests", **options)


def test_deployment_tables_get_indexes_on_their_times(db, mixed_pipeline, loans):
    _deployed(db, mixed_pipeline, loans)
    assert _indexes(db, "requests_predictions")["requests_p_time"] == "brin"
    labels = _indexes(db, "requests_ground_truth")
    assert (labels["requests_gt_id"], labels["requests_gt_time"]) == ("btree", "brin")
    db.deploy("m", table="rows", mode="row")  # predictions are the request table's columns
    assert _indexes(db, "rows")["rows_p_time"] == "brin"


def test_the_relabel_query_finds_what_a_pass_over_the_whole_history_finds(db, mixed_pipeline, loans):
    """Rows scored over five days, labels recorded late and more than once, labels for rows
    with no prediction; a monitor by scored_at and one by an event time column. For each
    moment of a last run, the stored query's window equals the whole-history query's."""
    _deployed(db, mixed_pipeline, loans)
    db.sql("ALTER TABLE requests ADD COLUMN event_at TIMESTAMP")
    db.deploy("m", table="requests")  # the scored view shows the new column
    for day in range(5):
        load(db, loan_frame(40, seed=day)[COLUMNS], f"2024-01-0{day + 1}")
    db.sql("UPDATE requests SET event_at = TIMESTAMP '2024-01-01' + id * INTERVAL '47 minutes'")
    db.sql("ALTER TABLE requests DISABLE TRIGGER USER")  # rows with no prediction, labelled
    every = ", ".join(COLUMNS)
    db.sql(f"INSERT INTO requests ({every}) SELECT {every} FROM requests LIMIT 5")
    db.sql("ALTER TABLE requests ENABLE TRIGGER USER")
    rng = np.random.default_rng(7)
    ids = rng.choice(db.sql("SELECT id FROM requests").id.to_numpy(), size=150)  # some twice
    labels = pd.DataFrame(
        {
            "id": ids,
            "label": rng.choice(["repaid", "default"], size=len(ids)),
            "observed_at": pd.Timestamp("2024-01-02")
            + pd.to_timedelta(rng.integers(0, 6 * 86400, len(ids)), "s"),
        }
    )
    db.write_table("labels", labels, replace=True)
    db.sql(
        "INSERT INTO requests_ground_truth (id, label, observed_at) SELECT id, label, observed_at FROM labels"
    )
    db.create_monitor("by_scored", "requests", reference=("2024-01-01", "2024-01-02"), features=["income"])
    db.create_monitor(
        "by_event",
        "requests",
        reference=("2024-01-01", "2024-01-02"),
        features=["income"],
        time_column="event_at",
        window="6 hours",
    )
    stored = dict(db.sql("SELECT name, relabeled_sql FROM indb.monitors").values.tolist())
    db.sql(  # runs a stored query as indb.run_monitor does
        "CREATE FUNCTION pg_temp.relabeled(query text, seconds bigint, since timestamp) "
        "RETURNS timestamp LANGUAGE plpgsql AS $$ DECLARE found timestamp; "
        "BEGIN EXECUTE query INTO found USING seconds, since; RETURN found; END $$"
    )
    moments = pd.date_range("2023-12-31", "2024-01-09", freq="7h").tolist() + [pd.Timestamp("2030-01-01")]
    found = 0
    for name, time, seconds in (("by_scored", "s.scored_at", 86400), ("by_event", "s.event_at", 21600)):
        for moment in moments:
            found_by = {}
            for which, query in (("new", stored[name]), ("old", WHOLE_HISTORY.format(time=time))):
                found_by[which] = db.sql(
                    "SELECT pg_temp.relabeled($query, $seconds, $since) AS w",
                    {"query": query, "seconds": seconds, "since": moment.to_pydatetime()},
                ).w[0]
            new, old = found_by["new"], found_by["old"]
            assert (pd.isna(new) and pd.isna(old)) or new == old, (name, moment, new, old)
            found += not pd.isna(new)
    assert found > len(moments)  # most moments have a window to compute again, some do not


def _age(db, name: str) -> None:
    """The monitor as an earlier indb left it: the whole-history query stored, and the run
    procedure of another version."""
    db.sql(
        "UPDATE indb.monitors SET relabeled_sql = $text WHERE name = $name",
        {"text": WHOLE_HISTORY.format(time='"s"."scored_at"'), "name": name},
    )
    db.sql("COMMENT ON PROCEDURE indb.run_monitor(text, timestamp, bigint) IS 'indb 0000000000000000'")


def test_monitors_from_before_get_the_new_query_on_the_first_run_after_an_upgrade(db, mixed_pipeline, loans):
    """Two processes connect and run two monitors at once right after the upgrade: the
    procedure is installed and both monitors' queries rewritten once (at connect, under the
    catalog's lock), before any pg_cron run could use the old ones."""
    _deployed(db, mixed_pipeline, loans)
    load(db, loan_frame(60, seed=1)[COLUMNS], "2024-01-01")
    load(db, loan_frame(60, seed=2)[COLUMNS], "2024-01-02")
    for name in ("one", "two"):
        db.create_monitor(name, "requests", reference=("2024-01-01", "2024-01-02"), features=["income"])
    ((current,),) = db.backend.rows("SELECT relabeled_sql FROM indb.monitors WHERE name = 'one'")
    assert "UNION ALL" in current
    for name in ("one", "two"):
        _age(db, name)
    errors, barrier = [], threading.Barrier(2)

    def run(name: str) -> None:
        try:
            with indb.connect(db.url) as process:
                barrier.wait(30)
                assert process.run_monitor(name).windows == 2
        except Exception as e:  # asserted below
            errors.append(f"{name}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    stored = db.sql("SELECT name, relabeled_sql FROM indb.monitors ORDER BY name")
    assert stored.relabeled_sql.tolist() == [current, current]
    comment = db.sql("SELECT obj_description('indb.run_monitor(text, timestamp, bigint)'::regprocedure) AS c")
    assert comment.c[0] != "indb 0000000000000000"
    results = db.monitor_results("one")
    assert sorted(results.window_start.unique()) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]


@pytest.mark.parametrize("mode", ["bulk", "row"])
def test_doctor_gives_the_indexes_a_table_deployed_before_lacks(db, mixed_pipeline, loans, mode):
    import psycopg

    _deployed(db, mixed_pipeline, loans, mode=mode)
    home = "requests" if mode == "row" else "requests_predictions"
    for index in ("requests_p_time", "requests_gt_id", "requests_gt_time"):
        db.sql(f"DROP INDEX {index}")  # as deployed by an earlier indb
    (check,) = [c for c in db.backend.health() if c.name == "time indexes"]
    assert not check.ok and "requests" in check.detail
    statements = [s for s in check.fix.split(";") if s.strip()]
    assert len(statements) == 3 and all("CREATE INDEX CONCURRENTLY" in s for s in statements)
    with psycopg.connect(db.url, autocommit=True) as dba:  # CONCURRENTLY: outside a transaction
        for text in statements:
            dba.execute(text)
    assert _indexes(db, home)["requests_p_time"] == "brin"
    (check,) = [c for c in db.backend.health() if c.name == "time indexes"]
    assert check.ok

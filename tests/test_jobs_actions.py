"""The job actions (indb.jobs.actions) on real databases: each does what its docstring says,
retain deletes exactly what a brute-force reference says and keeps what monitors still read,
and bad arguments change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import indb
from indb.jobs import actions
from indb.jobs.actions import Context
from tests.test_feature_store import START, customer_rows
from tests.test_monitoring_drift import _model

NOW = datetime(2024, 3, 11)
DAYS = [datetime(2024, 3, d) for d in range(1, 11)]
PER_DAY = 40


def act(db, name: str, now: datetime = NOW, run_id: int = 1, owner: str | None = None, **arguments) -> dict:
    """Run an action as a job would: arguments checked, then run with a context."""
    action = actions.get(name)
    owner = owner or db.backend.user
    context = Context(job="test", run_id=run_id, owner=owner, scheduled_for=None, now=now)
    return action.run(db.backend, action.check(arguments), context)


# -- a deployment with aged rows -------------------------------------------------------------------
def _rows(day: datetime, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(0.3 * seed / 10, 1, PER_DAY),
            "y": rng.exponential(1, PER_DAY),
            "c": rng.choice(list("abc"), PER_DAY),
            "created_at": [day + timedelta(minutes=30 * i) for i in range(PER_DAY)],
            "event_time": [day + timedelta(days=2, minutes=30 * i) for i in range(PER_DAY)],
        }
    )


def aged(db, days=DAYS) -> None:
    """Requests created on ``days`` (an adopted table: its created_at is the test's to set),
    their predictions scored when created, labels for most of them a day later, and a few labels
    recorded before the prediction they belong to (they must stay while it stays)."""
    model, _ = _model()
    first = _rows(days[0], 0)
    db.write_table("requests", first.iloc[:0], replace=True)
    db.register_model("m", model, sample=first[["x", "y", "c"]])
    db.deploy("m", table="requests")
    add_days(db, days)


def add_days(db, days) -> None:
    for day in days:
        db.write_table("incoming", _rows(day, day.day), replace=True)
        db.sql(
            "INSERT INTO requests (x, y, c, created_at, event_time) "
            "SELECT x, y, c, created_at, event_time FROM incoming"
        )
    db.sql(
        "UPDATE requests_predictions AS p SET scored_at = r.created_at FROM requests AS r "
        "WHERE r.id = p.id AND r.created_at < CAST($now AS TIMESTAMP)",
        {"now": NOW},
    )
    db.sql(
        "INSERT INTO requests_ground_truth (id, label, observed_at) "
        "SELECT p.id, p.prediction, p.scored_at + INTERVAL '1 day' FROM requests_predictions AS p "
        "WHERE p.id % 10 < 7 AND p.id NOT IN (SELECT id FROM requests_ground_truth)"
    )
    db.sql(  # early labels: observed three days before their row was scored
        "INSERT INTO requests_ground_truth (id, label, observed_at) "
        "SELECT p.id, p.prediction, p.scored_at - INTERVAL '3 days' FROM requests_predictions AS p "
        "WHERE p.id % 10 = 9 AND p.id NOT IN (SELECT id FROM requests_ground_truth)"
    )


def tables(db) -> dict[str, pd.DataFrame]:
    return {
        "requests": db.sql("SELECT id, created_at FROM requests ORDER BY id"),
        "predictions": db.sql("SELECT id, scored_at FROM requests_predictions ORDER BY id"),
        "ground_truth": db.sql(
            "SELECT id, observed_at, label FROM requests_ground_truth ORDER BY id, observed_at"
        ),
    }


def expected_after(before: dict[str, pd.DataFrame], cutoff: datetime, kinds=None) -> dict[str, set]:
    """Brute force: what retain keeps of each table (ids; labels as (id, observed_at))."""
    kinds = kinds or ("requests", "predictions", "ground_truth")
    p, g, r = before["predictions"], before["ground_truth"], before["requests"]
    kept_p = p if "predictions" not in kinds else p[p.scored_at >= cutoff]
    fresh = set(p.id[p.scored_at >= cutoff])
    drop_g = (g.observed_at < cutoff) & ~g.id.isin(fresh) if "ground_truth" in kinds else g.id < -1
    kept_g = g[~drop_g]
    drop_r = (
        (r.created_at < cutoff) & ~r.id.isin(set(kept_p.id)) & ~r.id.isin(set(kept_g.id))
        if "requests" in kinds
        else r.id < -1
    )
    return {
        "requests": set(r.id[~drop_r]),
        "predictions": set(kept_p.id),
        "ground_truth": set(zip(kept_g.id, kept_g.observed_at, strict=True)),
    }


def kept(db) -> dict[str, set]:
    return kept_of(tables(db))


def kept_of(now: dict[str, pd.DataFrame]) -> dict[str, set]:
    g = now["ground_truth"]
    return {
        "requests": set(now["requests"].id),
        "predictions": set(now["predictions"].id),
        "ground_truth": set(zip(g.id, g.observed_at, strict=True)),
    }


# -- retain ---------------------------------------------------------------------------------------
def test_retain_deletes_what_a_brute_force_reference_says_in_batches(db):
    aged(db)
    before = tables(db)
    cutoff = NOW - timedelta(days=4.5)  # mid-day: no monitor, so no window to round to
    result = act(db, "retain", deployment="requests", days=4.5, batch_size=37)
    want = expected_after(before, cutoff)
    assert kept(db) == want
    assert result["cutoff"] == result["requested_cutoff"] == cutoff.isoformat(sep=" ")
    assert "note" not in result and result["monitors"] == {}
    gone = {k: len(before[k]) - len(want[k]) for k in want}
    assert result["deleted"] == gone and result["rows"] == sum(gone.values()) > 0
    assert result["batches"] > 3
    assert gone["requests"] < (before["requests"].created_at < cutoff).sum()  # early labels kept some
    # a second sweep finds nothing more
    assert act(db, "retain", deployment="requests", days=4.5, batch_size=37)["rows"] == 0


def test_retain_commits_batch_by_batch(db):
    """Each batch is its own transaction: when one fails (here an archive table refusing ids
    from 100 on), the batches before it stay done and the failing one changes nothing."""
    aged(db)
    before = tables(db)
    db.sql(
        "CREATE TABLE requests_archive (x DOUBLE PRECISION, y DOUBLE PRECISION, c VARCHAR, "
        "created_at TIMESTAMP, event_time TIMESTAMP, id BIGINT CHECK (id < 100))"
    )
    with pytest.raises(Exception, match="(?i)check"):
        act(db, "retain", deployment="requests", days=4.5, batch_size=30, archive=True)
    done = expected_after(before, NOW - timedelta(days=4.5))
    untouched = kept_of(before)
    want = {
        kind: {e for e in done[kind] if _id(e) < 91} | {e for e in untouched[kind] if _id(e) >= 91}
        for kind in done
    }
    assert kept(db) == want
    assert want != untouched and db.sql("SELECT max(id) AS m FROM requests_archive").m[0] < 91


def _id(entry) -> int:
    return int(entry[0] if isinstance(entry, tuple) else entry)


def test_retain_compares_in_the_sessions_local_time(db):
    """Deployment tables hold local times (current_timestamp): the run's UTC time is converted."""
    db.sql("SET TimeZone = 'Asia/Kolkata'")  # UTC+5:30, no daylight saving
    aged(db)
    before = tables(db)
    result = act(db, "retain", deployment="requests", days=4.5)
    local = NOW + timedelta(hours=5, minutes=30) - timedelta(days=4.5)
    assert result["requested_cutoff"] == local.isoformat(sep=" ")
    assert kept(db) == expected_after(before, local)


def test_retain_a_subset_of_tables(db):
    aged(db)
    before = tables(db)
    result = act(db, "retain", deployment="requests", days=3, tables=["predictions"], batch_size=1000)
    assert kept(db) == expected_after(before, NOW - timedelta(days=3), ("predictions",))
    assert set(result["deleted"]) == {"predictions"} and result["batches"] == 1


def test_retain_archives_into_table_archive(db):
    aged(db)
    before = {k: db.sql(f"SELECT * FROM {t}") for k, t in _NAMES.items()}
    result = act(db, "retain", deployment="requests", days=5, archive=True, batch_size=64)
    assert result["archived"] == result["deleted"] and result["rows"] > 0
    for kind, table in _NAMES.items():
        after = db.sql(f"SELECT * FROM {table}")
        archived = db.sql(f"SELECT * FROM {table}_archive")
        assert list(archived.columns) == list(before[kind].columns)
        assert len(archived) == result["deleted"][kind] > 0
        order = list(after.columns)
        both = pd.concat([after, archived]).sort_values(order).reset_index(drop=True)
        assert both.equals(before[kind].sort_values(order).reset_index(drop=True))
    again = act(db, "retain", deployment="requests", days=3, archive=True, batch_size=64)
    assert again["rows"] > 0  # into the archive tables made by the first sweep
    assert len(db.sql("SELECT * FROM requests_predictions_archive")) == sum(
        r["deleted"]["predictions"] for r in (result, again)
    )


_NAMES = {
    "requests": "requests",
    "predictions": "requests_predictions",
    "ground_truth": "requests_ground_truth",
}


def _results(db, name: str, since: datetime) -> pd.DataFrame:
    frame = db.monitor_results(name)
    frame = frame[frame.window_start >= pd.Timestamp(since)]
    columns = ["window_start", "model_version", "feature", "metric", "category", "value", "n_current"]
    return frame[columns].sort_values(columns[:5]).reset_index(drop=True)


def test_retain_keeps_what_monitors_still_read(tmp_path):
    db = indb.connect(f"duckdb://{tmp_path}/m.duckdb")
    aged(db, DAYS[:4])
    reference = (DAYS[0].date().isoformat(), DAYS[1].date().isoformat())
    db.create_monitor("early", "requests", reference=reference, window="1 day")
    db.create_monitor("late", "requests", reference=reference, window="1 day")
    db.run_monitor("early")  # last_window: day 4
    add_days(db, DAYS[4:])
    db.run_monitor("late")  # every window, before retain
    before = tables(db)

    result = act(db, "retain", deployment="requests", days=2, batch_size=50)
    assert result["monitors"] == {"early": "2024-03-04 00:00:00", "late": "2024-03-10 00:00:00"}
    assert result["cutoff"] == "2024-03-04 00:00:00"  # not now - 2 days: 'early' reads from day 4
    assert "monitor 'early' still reads rows from 2024-03-04 00:00:00" in result["note"]
    assert kept(db) == expected_after(before, DAYS[3])
    assert min(tables(db)["predictions"].scored_at) >= pd.Timestamp(DAYS[3])

    db.run_monitor("early")  # recomputes from its last window, over what retain kept
    got, want = _results(db, "early", DAYS[3]), _results(db, "late", DAYS[3])
    assert len(got) > 0 and got["window_start"].nunique() == 7
    pd.testing.assert_frame_equal(got, want)
    assert {"accuracy"} <= set(got.metric)  # labels kept: early labels of kept rows too
    db.close()


def test_retain_keeps_the_rows_of_a_monitor_windowed_by_a_request_column(tmp_path):
    """A monitor by event_time (two days after created_at): its kept windows hold rows scored
    before its last window; the cutoff moves back to the earliest of them."""
    db = indb.connect(f"duckdb://{tmp_path}/t.duckdb")
    aged(db, DAYS[:4])
    reference = ("2024-03-03", "2024-03-04")
    for name in ("early", "late"):
        db.create_monitor(name, "requests", reference=reference, window="1 day", time_column="event_time")
    db.run_monitor("early")  # last_window: day 4 + 2
    add_days(db, DAYS[4:])
    db.run_monitor("late")
    before = tables(db)
    result = act(db, "retain", deployment="requests", days=2, batch_size=50)
    assert result["monitors"]["early"] == "2024-03-06 00:00:00"
    assert result["cutoff"] == "2024-03-04 00:00:00"  # created/scored two days before event_time
    assert kept(db) == expected_after(before, DAYS[3])
    db.run_monitor("early")
    got, want = _results(db, "early", datetime(2024, 3, 6)), _results(db, "late", datetime(2024, 3, 6))
    assert got["window_start"].nunique() == 7
    pd.testing.assert_frame_equal(got, want)
    db.close()


def test_retain_rounds_the_cutoff_to_a_monitor_window(tmp_path):
    db = indb.connect(f"duckdb://{tmp_path}/w.duckdb")
    aged(db)
    db.create_monitor("m", "requests", reference=("2024-03-01", "2024-03-02"), window="1 day")
    db.run_monitor("m")
    before = tables(db)
    result = act(db, "retain", deployment="requests", days=4.5)
    assert result["requested_cutoff"] == "2024-03-06 12:00:00"
    assert result["cutoff"] == "2024-03-06 00:00:00"  # the start of the day it fell in
    assert kept(db) == expected_after(before, datetime(2024, 3, 6))
    db.close()


def test_retain_keeps_everything_while_a_monitor_never_ran(db):
    aged(db, DAYS[:3])
    db.create_monitor("fresh", "requests", reference=("2024-03-01", "2024-03-02"))
    before = tables(db)
    result = act(db, "retain", deployment="requests", days=1)
    assert result["rows"] == 0 and "deleted" not in result
    assert "monitor 'fresh' has never run" in result["note"]
    assert result["monitors"] == {"fresh": None}
    assert kept(db) == expected_after(before, datetime(1, 1, 1))


def test_retain_job_runs_keeps_each_jobs_last_run_and_last_success(db):
    runs = [  # job, status, finished day (None: still running)
        ("a", "succeeded", 1),
        ("a", "failed", 2),
        ("a", "succeeded", 3),
        ("a", "failed", 4),
        ("a", "failed", 5),
        ("b", "succeeded", 1),
        ("b", "succeeded", 2),
        ("c", "running", None),
        ("c", "failed", 1),
        ("d", "failed", 9),
    ]
    for job, status, day in runs:
        finished = None if day is None else datetime(2024, 3, day)
        db.sql(
            "INSERT INTO indb.job_runs (job, status, runner, started_at, finished_at) "
            "VALUES ($job, $status, 'manual', CAST($started AS TIMESTAMP), CAST($finished AS TIMESTAMP))",
            {"job": job, "status": status, "started": datetime(2024, 3, day or 10), "finished": finished},
        )
    ids = db.sql("SELECT id FROM indb.job_runs ORDER BY id").id.tolist()
    result = act(db, "retain", job_runs=True, days=1, batch_size=3, run_id=ids[-1], archive=True)
    left = db.sql("SELECT job, status, finished_at FROM indb.job_runs ORDER BY id")
    # a: last success (day 3) and last run (day 5) stay; b: its last run; c: running and last
    # failed; d: the sweep's own run
    assert [(j, s) for j, s, _ in left.itertuples(index=False)] == [
        ("a", "succeeded"),
        ("a", "failed"),
        ("b", "succeeded"),
        ("c", "running"),
        ("c", "failed"),
        ("d", "failed"),
    ]
    assert result["rows"] == 4 and result["deleted"] == {"job_runs": 4} and result["batches"] >= 3
    assert len(db.sql("SELECT * FROM indb.job_runs_archive")) == 4


def _state(db) -> tuple:
    counts = [
        int(db.sql(f"SELECT count(*) AS n FROM {t}").n[0])
        for t in ("requests", "requests_predictions", "requests_ground_truth", "indb.job_runs")
    ]
    archives = db.sql(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE '%archive%'"
    ).n[0]
    return (*counts, int(archives))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"deployment": "requets", "days": 1}, "did you mean 'requests'"),
        ({"deployment": "requests", "days": -1}, "days must be at least 0"),
        ({"deployment": "requests", "days": "1"}, "days must be a number"),
        ({"deployment": 'requests"; DROP TABLE requests; --', "days": 1}, "not a plain identifier"),
        ({"deployment": "requests", "days": 1, "tables": ["predictions", "x"]}, "no table kind 'x'"),
        ({"deployment": "requests", "days": 1, "batch_size": 0}, "batch_size must be at least 1"),
        ({"deployment": "requests", "days": 1, "archive": "yes"}, "archive must be true or false"),
        ({"deployment": "requests", "days": 1, "job_runs": True}, "not both"),
        ({"days": 1}, "needs either a deployment or job_runs"),
        ({"job_runs": True, "days": 1, "tables": ["requests"]}, "tables applies to a deployment"),
        ({"deployment": "requests", "days": 1, "keep": 3}, "has no argument 'keep'"),
    ],
)
def test_retain_bad_arguments_change_nothing(db, arguments, message):
    aged(db, DAYS[:2])
    before = _state(db)
    with pytest.raises(indb.IndbError, match=message):
        act(db, "retain", **arguments)
    assert _state(db) == before


def test_retain_refuses_requests_without_a_time_column(db):
    model, sample = _model()
    db.write_table("plain", sample.iloc[:0], replace=True)  # adopted: no created_at
    db.register_model("m", model, sample=sample)
    db.deploy("m", table="plain")
    db.write_table("incoming", sample.head(5), replace=True)
    db.sql("INSERT INTO plain (x, y, c) SELECT x, y, c FROM incoming")
    result = act(db, "retain", deployment="plain", days=0, now=datetime.now() + timedelta(days=1))
    assert result["deleted"]["predictions"] == 5 and "requests" not in result["deleted"]
    assert "no created_at time column" in result["note"]
    with pytest.raises(indb.IndbError, match="has no created_at time column"):
        act(db, "retain", deployment="plain", days=0, tables=["requests"])


# -- the other actions ------------------------------------------------------------------------------
def test_run_monitor_action(db):
    aged(db, DAYS[:3])
    db.create_monitor("drift", "requests", reference=("2024-03-01", "2024-03-02"), thresholds={"psi": 0.0})
    result = act(db, "run_monitor", monitor="drift")
    assert result["monitor"] == "drift" and result["windows"] == 3 and result["results"] > 0
    alerts = db.alerts("drift")
    assert result["crossed"] > 0 and sorted(result["alerts"]) == sorted(int(i) for i in alerts.id)
    with pytest.raises(indb.IndbError, match="did you mean 'drift'"):
        act(db, "run_monitor", monitor="drfit")
    with pytest.raises(indb.IndbError, match="needs the argument 'monitor'"):
        act(db, "run_monitor")


@pytest.fixture
def store(db):
    db.create_entity("customer", keys=["customer_id"])
    return db


def test_ingest_action_appends_a_query(store):
    store.write_table("raw", customer_rows(300), replace=True)
    store.create_feature_set(
        "finance", "customer", source="SELECT * FROM raw WHERE ts < '2024-01-05'", event_time="ts"
    )
    before = int(store.sql("SELECT count(*) AS n FROM fs_finance").n[0])
    result = act(store, "ingest", feature_set="finance", query="SELECT * FROM raw WHERE ts >= '2024-01-05'")
    assert result == {"feature_set": "finance", "version": 1, "rows": 300 - before}
    assert int(store.sql("SELECT count(*) AS n FROM fs_finance").n[0]) == 300
    for query, message in [
        ("DELETE FROM raw", "must be a SELECT"),
        ("SELECT 1; DROP TABLE raw", "one SELECT statement"),
        ("", "non-empty"),
    ]:
        with pytest.raises(indb.IndbError, match=message):
            act(store, "ingest", feature_set="finance", query=query)
    with pytest.raises(indb.IndbError, match="did you mean 'finance'"):
        act(store, "ingest", feature_set="finanse", query="SELECT * FROM raw")
    assert int(store.sql("SELECT count(*) AS n FROM fs_finance").n[0]) == 300
    assert int(store.sql("SELECT count(*) AS n FROM raw").n[0]) == 300


def test_refresh_feature_set_reads_new_source_rows_only(store):
    rows = customer_rows(300)
    store.write_table("raw", rows.iloc[:200], replace=True)
    store.create_feature_set("finance", "customer", source="raw", event_time="ts")
    store.create_feature_set(
        "by_query", "customer", source="SELECT * FROM raw WHERE segment = 'a'", event_time="ts"
    )
    assert act(store, "refresh_feature_set", feature_set="finance")["rows"] == 0
    store.write_table("raw", rows.iloc[200:], replace=False)
    # brute force: new rows whose (customer, time) is not stored yet
    old = set(zip(rows.customer_id.iloc[:200], rows.ts.iloc[:200], strict=True))
    new = rows.iloc[200:][
        [(k, t) not in old for k, t in zip(rows.customer_id.iloc[200:], rows.ts.iloc[200:], strict=True)]
    ]
    result = act(store, "refresh_feature_set", feature_set="finance")
    assert result == {"feature_set": "finance", "version": 1, "rows": len(new)} and len(new) > 90
    assert act(store, "refresh_feature_set", feature_set="finance")["rows"] == 0
    history = store.sql("SELECT customer_id, ts, income FROM fs_finance")
    want = pd.concat([rows.iloc[:200], new])
    assert sorted(history.itertuples(index=False, name=None)) == sorted(
        want[["customer_id", "ts", "income"]].itertuples(index=False, name=None)
    )
    old_a = {
        (k, t)
        for k, t, s in zip(
            rows.customer_id.iloc[:200], rows.ts.iloc[:200], rows.segment.iloc[:200], strict=True
        )
        if s == "a"
    }
    new_a = [
        (k, t)
        for k, t, s in zip(
            rows.customer_id.iloc[200:], rows.ts.iloc[200:], rows.segment.iloc[200:], strict=True
        )
        if s == "a" and (k, t) not in old_a
    ]
    assert act(store, "refresh_feature_set", feature_set="by_query")["rows"] == len(new_a) > 0
    latest = store.online_features(["finance:income"], {"customer_id": int(rows.customer_id.iloc[-1])})
    assert len(latest) == 1


def test_refresh_feature_set_without_a_stored_query_is_refused(store):
    store.create_feature_set("framed", "customer", source=customer_rows(50), event_time="ts")
    store.create_feature_set(
        "empty",
        "customer",
        columns={"customer_id": "BIGINT", "ts": "TIMESTAMP", "v": "DOUBLE"},
        event_time="ts",
    )
    with pytest.raises(indb.IndbError, match="'framed' version 1 was created from an in-memory DataFrame"):
        act(store, "refresh_feature_set", feature_set="framed")
    with pytest.raises(indb.IndbError, match="'empty' version 1 has no stored source query"):
        act(store, "refresh_feature_set", feature_set="empty")
    store.write_table("raw", customer_rows(50), replace=True)
    long = "SELECT * FROM raw WHERE " + " OR ".join(f"customer_id = {i}" for i in range(1000))
    store.create_feature_set("long", "customer", source=long, event_time="ts")
    with pytest.raises(indb.IndbError, match="stored source was cut at 10,000 characters"):
        act(store, "refresh_feature_set", feature_set="long")
    assert int(store.sql("SELECT count(*) AS n FROM fs_framed").n[0]) == 50


def test_materialize_latest_and_rebuild_training_set(store):
    rows = customer_rows(400)
    store.create_feature_set("finance", "customer", source=rows, event_time="ts")
    store.sql("DELETE FROM fs_finance_v1_latest")
    result = act(store, "materialize_latest", feature_set="finance")
    assert result == {"feature_set": "finance", "version": 1, "rows": rows.customer_id.nunique()}
    assert int(store.sql("SELECT count(*) AS n FROM fs_finance_latest").n[0]) == rows.customer_id.nunique()

    spine = pd.DataFrame(
        {
            "customer_id": rows.customer_id.iloc[:60],
            "event_time": [START + timedelta(hours=5 * i) for i in range(60)],
        }
    )
    store.write_table("spine", spine, replace=True)
    store.training_set("spine", ["finance:income"], materialize=True, name="loans_ts")
    cutoff = START + timedelta(hours=100)
    result = act(store, "rebuild_training_set", training_set="loans_ts", cutoff=cutoff.isoformat())
    assert result["version"] == 2 and result["rows"] == int((spine.event_time <= cutoff).sum())
    assert result["cutoff"] == cutoff.isoformat(sep=" ")
    now = START + timedelta(hours=30)
    assert act(store, "rebuild_training_set", now=now, training_set="loans_ts")["rows"] == int(
        (spine.event_time <= now).sum()
    )
    with pytest.raises(indb.IndbError, match="'yesterday' is not an ISO date"):
        act(store, "rebuild_training_set", training_set="loans_ts", cutoff="yesterday")
    with pytest.raises(indb.IndbError, match="did you mean 'loans_ts'"):
        act(store, "rebuild_training_set", training_set="loan_ts")
    assert store.get_training_set("loans_ts").version == 3


def test_sql_action_runs_one_statement(db):
    db.sql("CREATE TABLE t (v INTEGER)")
    db.sql("INSERT INTO t VALUES (1), (2), (3)")
    assert act(db, "sql", statement="DELETE FROM t WHERE v > 1") == {"statement": "DELETE"}
    assert act(db, "sql", statement="SELECT * FROM t") == {"statement": "SELECT", "rows": 1}
    for text, message in [
        ("DELETE FROM t; DROP TABLE t", "exactly one statement; found 2"),
        ("COMMIT", "refuses transaction control"),
        ("/* hidden */ BEGIN", "refuses transaction control"),
        ("ROLLBACK", "refuses transaction control"),
        ("DELETE FROM", "does not parse"),
    ]:
        with pytest.raises(indb.IndbError, match=message):
            act(db, "sql", statement=text)
    assert db.sql("SELECT v FROM t").v.tolist() == [1]
    if db.backend.supports_procedures:  # a server with roles: never with another user's rights
        with pytest.raises(indb.IndbError, match="runs its SQL as its owner 'someone_else'"):
            act(db, "sql", owner="someone_else", statement="DELETE FROM t")
        assert db.sql("SELECT v FROM t").v.tolist() == [1]

"""db.insert on DuckDB (issue 17): the insert skips the table's triggers and runs their own
statements over the rows it inserted, in one transaction. Real DuckDB files, real
scikit-learn models, real onnxruntime; several connections to one file for the concurrent
cases.

The skipped-trigger path takes one value of the table's id sequence before inserting (the
bound of "the rows it inserted"), so a fresh table's first db.insert gives ids from 2: the
tests use that to tell the path that skips the triggers from the one that fires them. A
DataFrame of fewer rows than ``skip_triggers_from`` goes through the triggers (it would run on
one thread anyway), a query always skips them: the tests stage small frames as tables and
insert from a query to reach the skipping path.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import indb
from indb.errors import DatabaseError, InvalidNameError, NotFoundError, QueryError, ScoringError

FEATURES = ["a", "b", "c"]


def frame(rows: int, seed: int = 0, offset: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.standard_normal((rows, len(FEATURES))), columns=FEATURES)
    x["a"] += offset
    return x


def labels(x: pd.DataFrame) -> np.ndarray:
    return (x.a + 0.5 * x.b - 0.25 * x.c > 0).astype(np.int64).to_numpy()


FIT = frame(400, seed=1)
MODELS = {
    "lr": lambda: LogisticRegression().fit(FIT, labels(FIT)),
    "gb": lambda: GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(
        FIT, labels(FIT)
    ),
}


@pytest.fixture
def url(tmp_path) -> str:
    return f"duckdb://{tmp_path}/insert.duckdb"


@pytest.fixture
def db(url):
    database = indb.connect(url)
    yield database
    database.close()


def scored(db, table: str) -> pd.DataFrame:
    """The request rows with their served prediction, in id order."""
    return db.sql(
        f"SELECT r.id, r.a, r.b, r.c, p.prediction, p.probability_0, p.probability_1, p.model_version "
        f"FROM {table} AS r JOIN {table}_predictions AS p ON p.id = r.id AND p.served ORDER BY r.id"
    )


def one_served_each(db, table: str) -> int:
    ((requests, served, ids, orphans),) = db.sql(
        f"SELECT (SELECT count(*) FROM {table}), count(*), count(DISTINCT id), "
        f"count(*) FILTER (WHERE id NOT IN (SELECT id FROM {table})) "
        f"FROM {table}_predictions WHERE served"
    ).itertuples(index=False)
    assert served == requests == ids and orphans == 0, (requests, served, ids, orphans)
    return int(requests)


def first_id(db, table: str) -> int:
    return int(db.sql(f"SELECT min(id) AS m FROM {table}").m[0])


@pytest.mark.parametrize("kind", ["lr", "gb"])
@pytest.mark.parametrize("runtime", ["onnx", "sql"])
def test_insert_scores_as_the_trigger_does_and_as_sklearn(db, kind, runtime):
    model = MODELS[kind]()
    db.register_model("m", model, sample=FIT)
    for table in ("fast", "fired", "small"):
        db.deploy("m", table=table, runtime=runtime)
    rows = frame(3000, seed=2)
    db.write_table("src", rows)
    assert db.insert("fast", "SELECT a, b, c FROM src") == len(rows)
    assert first_id(db, "fast") == 2  # the triggers were skipped: the path took id 1 as its bound
    db.sql("INSERT INTO fired (a, b, c) SELECT a, b, c FROM src")
    assert db.insert("small", rows) == len(rows)
    assert first_id(db, "small") == 1  # a small frame: through the triggers
    fast, fired, small = scored(db, "fast"), scored(db, "fired"), scored(db, "small")
    for table in ("fast", "fired", "small"):
        assert one_served_each(db, table) == len(rows)
    columns = ["a", "b", "c", "prediction", "probability_0", "probability_1", "model_version"]
    pd.testing.assert_frame_equal(fast[columns], fired[columns])  # the very same values
    pd.testing.assert_frame_equal(small[columns], fired[columns])
    expected = model.predict_proba(rows)
    tolerance = 1e-9 if kind == "lr" else 1e-6  # onnxruntime's trees sum in float32
    np.testing.assert_allclose(fast[["probability_0", "probability_1"]].to_numpy(), expected, atol=tolerance)
    assert (fast.prediction.to_numpy() == model.predict(rows)).all()


def test_every_kind_of_rows(db):
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="fast")
    parts = [frame(10, seed=s) for s in range(5)]
    assert db.insert("fast", parts[0]) == 10
    assert db.insert("fast", pa.Table.from_pandas(parts[1])) == 10
    assert db.insert("fast", parts[2].to_dict("records")) == 10
    db.write_table("src", parts[3])
    assert db.insert("fast", "SELECT a, b, c FROM src") == 10
    assert db.insert("fast", "src") == 10
    # columns in another order and case, a query with an expression
    assert db.insert("fast", parts[4][["c", "a", "b"]].rename(columns={"a": "A"})) == 10
    assert db.insert("fast", "SELECT a * 1.0 AS a, b, c FROM src WHERE a > 100") == 0
    got = scored(db, "fast")
    sent = pd.concat([parts[0], parts[1], parts[2], parts[3], parts[3], parts[4]], ignore_index=True)
    np.testing.assert_array_equal(got[FEATURES].to_numpy(), sent[FEATURES].to_numpy())
    np.testing.assert_allclose(got.probability_1, model.predict_proba(sent)[:, 1], atol=1e-9)
    assert one_served_each(db, "fast") == 60


def test_a_table_of_the_same_name_in_an_attached_database_is_not_mixed_in(db):
    """The table's columns are read in the current database only: another database's table of
    the same name (other columns) changes neither the checks nor the insert."""
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="fast")
    db.sql("ATTACH ':memory:' AS other")
    db.sql("CREATE TABLE other.fast (z VARCHAR, a VARCHAR)")
    assert db.backend.table_columns("fast") == {
        "id": "BIGINT", "a": "DOUBLE", "b": "DOUBLE", "c": "DOUBLE", "created_at": "TIMESTAMP"
    }  # fmt: skip
    assert db.insert("fast", frame(10)) == 10
    with pytest.raises(ScoringError, match="no column .z."):
        db.insert("fast", [{"a": 1.0, "b": 2.0, "c": 3.0, "z": "x"}])
    assert one_served_each(db, "fast") == 10


def test_a_big_frame_skips_the_triggers(db):
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="fast", runtime="sql")
    rows = frame(db.backend.skip_triggers_from, seed=4)
    assert db.insert("fast", rows) == len(rows)
    assert first_id(db, "fast") == 2
    assert one_served_each(db, "fast") == len(rows)
    np.testing.assert_allclose(scored(db, "fast").probability_1, model.predict_proba(rows)[:, 1], atol=1e-9)


def test_challengers_humility_and_explanations_are_written_as_by_the_triggers(db):
    first, second = MODELS["lr"](), MODELS["gb"]()
    db.register_model("m", first, sample=FIT)
    db.register_model("m", second, sample=FIT)  # version 2
    rows = frame(500, seed=3)
    db.write_table("src", rows)
    for table in ("fast", "fired"):
        db.deploy("m", table=table, version=1, runtime="sql", explain=True)
        db.add_challenger(table, 2, mode="shadow")
        db.add_humility_rule(table, "wide_a", "outside_range", "a", low=-1.5, high=1.5)
        db.add_humility_rule(table, "unsure", "uncertain", "probability_1", low=0.45, high=0.55)
        db.add_humility_rule(
            table, "far_b", "outside_range", "b", low=-2, high=2, action="override", override=1
        )
    db.insert("fast", "SELECT a, b, c FROM src")
    assert first_id(db, "fast") == 2
    db.sql("INSERT INTO fired (a, b, c) SELECT a, b, c FROM src")

    def by_row(sql: str, table: str) -> pd.DataFrame:
        # request ids differ between the tables (db.insert took one as its bound): compare by row
        found = db.sql(sql.format(t=table))
        return found.assign(row=found.id - first_id(db, table)).drop(columns="id").reset_index(drop=True)

    predictions = (
        "SELECT id, model_version, role, served, prediction, probability_0, probability_1 "
        "FROM {t}_predictions ORDER BY id, role"
    )
    pd.testing.assert_frame_equal(by_row(predictions, "fast"), by_row(predictions, "fired"))
    events = (
        "SELECT row_id AS id, rule, feature, value, action FROM indb.humility_events "
        "WHERE deployment = '{t}' ORDER BY row_id, rule"
    )
    fast_events = by_row(events, "fast")
    assert set(fast_events.rule) == {"wide_a", "unsure", "far_b"}
    pd.testing.assert_frame_equal(fast_events, by_row(events, "fired"))
    explanations = "SELECT id, feature, contribution, base FROM {t}_explanations ORDER BY id, feature"
    fast_explained = by_row(explanations, "fast")
    assert len(fast_explained) == len(rows) * len(FEATURES)
    pd.testing.assert_frame_equal(fast_explained, by_row(explanations, "fired"))
    # the override rule replaced the served prediction of the rows it caught
    overridden = db.sql(
        "SELECT p.prediction FROM fast AS r JOIN fast_predictions AS p USING (id) "
        "WHERE p.served AND abs(r.b) > 2"
    )
    assert len(overridden) and (overridden.prediction == 1).all()


def test_a_failure_rolls_back_both_tables_and_the_next_insert_is_scored(db):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="fast", runtime="sql")
    db.add_humility_rule("fast", "no_huge_a", "outside_range", "a", low=-50, high=50, action="reject")
    db.write_table("src", frame(20))
    db.insert("fast", "SELECT a, b, c FROM src")
    assert first_id(db, "fast") == 2
    before = one_served_each(db, "fast")
    # 1. refused by the statements run after the insert (the reject rule raises mid-way)
    with pytest.raises(ScoringError, match="no_huge_a"):
        db.insert("fast", "SELECT a + 100 AS a, b, c FROM src")
    # 2. refused by the insert itself, while the triggers are skipped (NOT NULL)
    with pytest.raises(indb.errors.IndbError, match="NOT NULL"):
        db.insert("fast", "SELECT a, CASE WHEN a > 0 THEN b END AS b, c FROM src")
    assert one_served_each(db, "fast") == before
    events = db.humility_events("fast")
    assert events.empty
    # this connection's triggers fire again: a plain INSERT is scored, a reject still rejects
    db.sql("INSERT INTO fast (a, b, c) VALUES (0.5, 0.5, 0.5)")
    assert one_served_each(db, "fast") == before + 1
    with pytest.raises(ScoringError, match="no_huge_a"):
        db.sql("INSERT INTO fast (a, b, c) VALUES (500, 0.5, 0.5)")
    ((skipped,),) = db.backend.rows("SELECT getvariable('indb_skip_triggers')")
    assert skipped is None
    assert db.backend.rows("SELECT * FROM duckdb_views() WHERE view_name = 'new_rows'") == []
    db.insert("fast", "SELECT a, b, c FROM src")
    assert one_served_each(db, "fast") == before + 21


def test_bad_input_is_refused_and_nothing_changes(db):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="fast")
    db.insert("fast", frame(5))
    with pytest.raises(NotFoundError, match="'fats'.*did you mean 'fast'"):
        db.insert("fats", frame(5))
    with pytest.raises(InvalidNameError):
        db.insert('fast"; DROP TABLE fast; --', frame(5))
    with pytest.raises(ScoringError, match=r"no column 'bb'; did you mean 'b'"):
        db.insert("fast", frame(5).rename(columns={"b": "bb"}))
    with pytest.raises(ScoringError, match="no column"):
        db.insert("fast", frame(5).rename(columns={"c": 'c"); DROP TABLE fast; --'}))
    with pytest.raises(ScoringError, match="fast.id is set by the database"):
        db.insert("fast", frame(5).assign(id=range(100, 105)))
    with pytest.raises(ScoringError, match="fast.a is DOUBLE; the rows give 'a' as VARCHAR"):
        db.insert("fast", frame(5).assign(a="1.5"))
    with pytest.raises(QueryError):
        db.insert("fast", "DELETE FROM fast")
    with pytest.raises(QueryError):
        db.insert("fast", "SELECT a, b, c FROM fast; DROP TABLE fast")
    with pytest.raises(ScoringError, match="one dict per row"):
        db.insert("fast", [])
    assert one_served_each(db, "fast") == 5


def test_a_table_that_is_not_deployed_takes_a_plain_insert(db):
    db.sql("CREATE TABLE plain (a DOUBLE, b DOUBLE, n BIGINT)")
    assert db.insert("plain", [{"a": 1.0, "b": 2.0, "n": 3}, {"a": 4.0, "n": 5}]) == 2
    got = db.sql("SELECT a, b IS NULL AS missing, n FROM plain ORDER BY n")
    assert got.values.tolist() == [[1.0, False, 3], [4.0, True, 5]]  # a key left out is NULL


def test_triggers_from_before_db_insert_fire_as_any_insert(db):
    """A deployment made before db.insert has triggers whose statements do not read the
    skip variable and no catalog row: db.insert then inserts through them."""
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="old", runtime="sql")
    db.deploy("m", table="mine", runtime="sql")
    # the trigger as indb wrote it before: its statement reads new_rows as it is (the row of
    # indb.insert_statements left in place, as when an older indb replaced the trigger)
    db.sql(
        "CREATE OR REPLACE TRIGGER old_score AFTER INSERT ON old REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT INSERT INTO old_predictions "
        "(id, model, model_version, runtime, role, served, prediction, probability_0, probability_1) "
        "SELECT id, 'm', 1, 'sql', 'champion', true, predict_m(a, b, c), "
        "predict_proba_m(a, b, c)[1], predict_proba_m(a, b, c)[2] FROM new_rows"
    )
    rows = frame(300)
    db.write_table("src", rows)
    db.insert("old", "SELECT a, b, c FROM src")
    assert first_id(db, "old") == 1  # no bound taken: the insert fired the trigger
    assert one_served_each(db, "old") == 300
    np.testing.assert_allclose(scored(db, "old").probability_1, model.predict_proba(rows)[:, 1], atol=1e-9)
    # another trigger of the user's on a deployed table: it fires, so does indb's
    db.sql("CREATE TABLE seen (id BIGINT)")
    db.sql(
        "CREATE TRIGGER mine_seen AFTER INSERT ON mine REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT INSERT INTO seen SELECT id FROM new_rows"
    )
    db.insert("mine", "src")
    assert first_id(db, "mine") == 1
    assert one_served_each(db, "mine") == 300
    assert db.sql("SELECT count(*) AS n FROM seen").n[0] == 300


def _writer(url, number, batches, plain_every, results, failures):
    db = indb.connect(url)
    try:
        for k in range(batches):
            tag = number * 1000 + k  # every row of one insert has a = tag
            rows = frame(40, seed=tag).assign(a=float(tag))
            try:
                db.write_table(f"src_{number}", rows, replace=True)
                if k % plain_every == 0:
                    db.sql(f"INSERT INTO t (a, b, c) SELECT a, b, c FROM src_{number}")
                elif k % plain_every == 1:
                    db.insert("t", rows)  # a small frame: through the triggers
                else:
                    db.insert("t", f"SELECT a, b, c FROM src_{number}")
                results.append((tag, len(rows)))
            except indb.errors.IndbError as e:
                failures.append((tag, str(e)))
    finally:
        db.close()


def _check_concurrent(db, results, failures, versions):
    print(f"{len(results)} inserts committed, {len(failures)} refused by a conflict")
    assert results, failures
    # a failed insert (a DuckDB conflict) left nothing: the table holds the committed ones
    for _, message in failures:
        assert "onflict" in message, message
    committed = dict(results)
    got = db.sql("SELECT a, count(*) AS n, count(DISTINCT model_version) AS v FROM t_scored GROUP BY a")
    assert dict(zip(got.a.astype(int), got.n, strict=True)) == committed
    assert (got.v == 1).all()  # one version per insert
    one_served_each(db, "t")
    # each row's prediction is its own (ids not mixed up between writers)
    rows = scored(db, "t")
    for version, model in versions.items():
        mine = rows[rows.model_version == version]
        np.testing.assert_allclose(mine.probability_1, model.predict_proba(mine[FEATURES])[:, 1], atol=1e-6)


def test_concurrent_writers_each_row_scored_once(db, url):
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="t", runtime="sql")
    results, failures = [], []
    threads = [threading.Thread(target=_writer, args=(url, n, 12, 3, results, failures)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_concurrent(db, results, failures, {1: model})
    assert len(results) == 48, failures


def test_a_switch_during_inserts_scores_each_insert_with_one_version(db, url):
    first, second = MODELS["lr"](), MODELS["gb"]()
    db.register_model("m", first, sample=FIT)
    db.register_model("m", second, sample=FIT)
    db.deploy("m", table="t", version=1, runtime="sql")
    results, failures = [], []
    threads = [threading.Thread(target=_writer, args=(url, n, 15, 4, results, failures)) for n in range(3)]
    for t in threads:
        t.start()
    switched = []
    while any(t.is_alive() for t in threads):
        version = 2 if len(switched) % 2 == 0 else 1
        try:
            db.deploy("m", table="t", version=version, runtime="onnx" if version == 2 else "sql")
            switched.append(version)
        except indb.errors.IndbError as e:
            assert "onflict" in str(e), e
    for t in threads:
        t.join()
    assert switched
    print(f"{len(switched)} switches")
    _check_concurrent(db, results, failures, {1: first, 2: second})


def test_a_split_challenger_serves_its_share(db):
    first, second = MODELS["lr"](), MODELS["gb"]()
    db.register_model("m", first, sample=FIT)
    db.register_model("m", second, sample=FIT)
    db.deploy("m", table="fast", version=1, runtime="sql")
    db.add_challenger("fast", 2, mode="split", weight=0.3, runtime="onnx")
    rows = frame(2000, seed=5)
    db.write_table("src", rows)
    db.insert("fast", "src")
    assert first_id(db, "fast") == 2
    assert one_served_each(db, "fast") == len(rows)
    got = scored(db, "fast")
    assert set(got.model_version) == {1, 2}
    for version, model in ((1, first), (2, second)):
        mine = got[got.model_version == version]
        np.testing.assert_allclose(mine.probability_1, model.predict_proba(mine[FEATURES])[:, 1], atol=1e-6)
    # the same rows through the trigger get the same split (it is a hash of id)
    db.deploy("m", table="fired", version=1, runtime="sql")
    db.add_challenger("fired", 2, mode="split", weight=0.3, runtime="onnx")
    db.sql("INSERT INTO fired (a, b, c) SELECT 0, 0, 0")  # ids from 2, as db.insert's were
    db.sql("INSERT INTO fired (a, b, c) SELECT a, b, c FROM src")
    fired = scored(db, "fired").iloc[1:].reset_index(drop=True)
    columns = ["id", "prediction", "probability_1", "model_version"]
    pd.testing.assert_frame_equal(got[columns], fired[columns])


# -- the triggers dropped for the insert, in db.insert's own transaction -------------------------


def triggers(db, table: str, by: str = "trigger_name") -> list[tuple]:
    """(name, oid, sql) of the table's triggers in the order they fire (by name in DuckDB 2.0),
    or ``by`` another column (trigger_oid: the order they were made in)."""
    return [
        tuple(r)
        for r in db.backend.rows(
            "SELECT trigger_name, trigger_oid, sql FROM duckdb_triggers() WHERE table_name = $t "
            f"ORDER BY {by}",
            {"t": table},
        )
    ]


def same_triggers(before: list[tuple], after: list[tuple]) -> bool:
    """The same triggers (names, order, SQL as DuckDB prints it), whatever their oids."""
    return [(n, s) for n, _, s in before] == [(n, s) for n, _, s in after]


class Hold:
    """A scalar function for a db.insert's source query whose first call waits until released:
    meanwhile that db.insert is under way (its triggers dropped, uncommitted)."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, value: float) -> float:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(120), "never released"
        return value

    def insert(self, url: str, table: str, results: list, failures: list) -> threading.Thread:
        """db.insert of src through this function, on a connection and thread of its own."""

        def run():
            db = indb.connect(url)
            try:
                db.backend.con.create_function("hold", self, ["DOUBLE"], "DOUBLE", side_effects=True)
                results.append(db.insert(table, "SELECT hold(a) AS a, b, c FROM src"))
            except Exception as e:  # reported by the test
                failures.append(e)
                self.entered.set()
            finally:
                db.close()

        thread = threading.Thread(target=run)
        thread.start()
        assert self.entered.wait(60)
        return thread

    @contextmanager
    def inserting(self, url: str, table: str):
        """(results, failures) of :meth:`insert`, held for the block, released and joined after."""
        results, failures = [], []
        thread = self.insert(url, table, results, failures)
        try:
            yield results, failures
        finally:
            self.release.set()
            thread.join()


def deployed_with_rules(db, table: str = "t", version: int = 1):
    db.deploy("m", table=table, version=version, runtime="sql", explain=True)
    db.add_humility_rule(table, "wide_a", "outside_range", "a", low=-1.5, high=1.5)
    db.add_humility_rule(table, "far_b", "outside_range", "b", low=-2, high=2, action="override", override=1)


def test_db_insert_drops_the_triggers_and_makes_them_again_as_they_were(db):
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    deployed_with_rules(db)
    rows = frame(3000, seed=7)
    db.write_table("src", rows)
    before = triggers(db, "t")
    assert [n for n, _, _ in before] == ["t_explain", "t_score", "t_score_humility", "t_score_humility_2"]
    db.insert("t", "SELECT a, b, c FROM src")
    after = triggers(db, "t")
    assert same_triggers(before, after)
    assert all(new > old for (_, old, _), (_, new, _) in zip(before, after, strict=True))  # made again
    assert one_served_each(db, "t") == len(rows)
    np.testing.assert_allclose(
        scored(db, "t").probability_1[rows.b.abs().to_numpy() <= 2],
        model.predict_proba(rows[rows.b.abs() <= 2])[:, 1],
        atol=1e-9,
    )
    # the triggers made again fire as before: a plain INSERT is scored, explained, logged
    db.sql("INSERT INTO t (a, b, c) VALUES (3.0, 0.5, 0.5)")
    assert one_served_each(db, "t") == len(rows) + 1
    ((explained,),) = db.backend.rows("SELECT count(DISTINCT id) FROM t_explanations")
    assert explained == len(rows) + 1
    assert "wide_a" in set(db.humility_events("t").rule)


def test_inside_a_callers_transaction_db_insert_skips_the_triggers(db):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="t", runtime="sql")
    db.write_table("src", frame(500))
    before = triggers(db, "t")
    with db.backend.transaction():
        db.insert("t", "src")
    assert triggers(db, "t") == before  # not dropped: the transaction was not db.insert's
    assert first_id(db, "t") == 2
    assert one_served_each(db, "t") == 500


def test_big_trigger_statements_are_skipped_not_dropped(db):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="t", runtime="sql")
    db.write_table("src", frame(500))
    before = triggers(db, "t")
    db.backend.drop_triggers_up_to = 10  # characters: every statement is bigger
    db.insert("t", "src")
    assert triggers(db, "t") == before
    assert first_id(db, "t") == 2
    assert one_served_each(db, "t") == 500


def test_a_trigger_that_reads_otherwise_once_made_again_is_skipped(db):
    """A trigger whose SQL is not what indb's kept statement makes (here changed by hand, still
    reading the skip variable): db.insert finds the difference after making it again, rolls
    back and skips it instead (the trigger stays as it was), and skips it from then on."""
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="t", runtime="sql")
    db.write_table("src", frame(500))
    ((kept,),) = db.backend.rows(
        "SELECT statement FROM indb.insert_statements WHERE trigger_name = 't_score'"
    )
    marker = "IS NOT TRUE)"
    assert kept.count(marker) == 1
    changed = kept.replace(marker, "IS NOT TRUE AND a IS NOT NULL)")
    db.sql(
        "CREATE OR REPLACE TRIGGER t_score AFTER INSERT ON t REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT {changed}"
    )
    before = triggers(db, "t")
    db.insert("t", "src")
    assert triggers(db, "t") == before
    db.insert("t", "src")
    assert triggers(db, "t") == before
    assert one_served_each(db, "t") == 1000


def test_a_failure_while_the_triggers_are_dropped_leaves_them_in_place(db):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    deployed_with_rules(db)
    db.add_humility_rule("t", "no_huge_c", "outside_range", "c", low=-50, high=50, action="reject")
    db.write_table("src", frame(300))
    db.insert("t", "src")
    before = triggers(db, "t")
    with pytest.raises(ScoringError, match="no_huge_c"):
        db.insert("t", "SELECT a, b, c + 100 AS c FROM src")
    with pytest.raises(indb.errors.IndbError, match="NOT NULL"):
        db.insert("t", "SELECT a, CASE WHEN a > 0 THEN b END AS b, c FROM src")
    assert triggers(db, "t") == before  # rolled back with the rows: the very same triggers
    db.sql("INSERT INTO t (a, b, c) VALUES (0.5, 0.5, 0.5)")
    assert one_served_each(db, "t") == 301


def test_a_plain_insert_while_a_db_insert_holds_the_triggers_dropped_is_scored(db, url):
    model = MODELS["lr"]()
    db.register_model("m", model, sample=FIT)
    db.deploy("m", table="t", runtime="sql")
    db.write_table("src", frame(3000, seed=8))
    before = triggers(db, "t")
    with Hold().inserting(url, "t") as (results, failures):
        db.sql("INSERT INTO t (a, b, c) VALUES (0.25, 0.5, 0.75)")  # this connection sees them
        assert one_served_each(db, "t") == 1
    assert not failures, failures
    assert results == [3000]
    assert same_triggers(before, triggers(db, "t"))
    assert one_served_each(db, "t") == 3001
    got = scored(db, "t")
    np.testing.assert_allclose(got.probability_1, model.predict_proba(got[FEATURES])[:, 1], atol=1e-9)


def test_two_db_inserts_at_once_both_commit(db, url):
    """The second meets the first's dropped triggers (DuckDB refuses its DROP at once): it rolls
    back and inserts with the triggers skipped, in a new transaction, without waiting."""
    db.register_model("m", MODELS["lr"](), sample=FIT)
    deployed_with_rules(db)
    db.write_table("src", frame(3000, seed=9))
    before = triggers(db, "t")
    with Hold().inserting(url, "t") as (results, failures):
        assert db.insert("t", "src") == 3000  # while the other holds the triggers dropped
        assert triggers(db, "t") == before  # skipped, not dropped
    assert not failures, failures
    assert results == [3000]
    assert same_triggers(before, triggers(db, "t"))
    assert one_served_each(db, "t") == 6000
    ((explained,),) = db.backend.rows("SELECT count(DISTINCT id) FROM t_explanations")
    assert explained == 6000


def _while_a_db_insert_holds_the_triggers(url: str, change) -> tuple[list, list, list]:
    """``change(db)`` on a connection of its own while a db.insert of src into t holds t's
    triggers dropped: it must wait for them (a catalog wait) until the insert is released.
    (The insert's results, its failures, what the change returned or raised.)"""
    hold, results, failures = Hold(), [], []
    thread = hold.insert(url, "t", results, failures)
    other, outcome = indb.connect(url), []

    def run():
        try:
            outcome.append(change(other))
        except Exception as e:
            outcome.append(e)

    changing = threading.Thread(target=run)
    try:
        changing.start()
        for _ in range(6000):  # until the change has met the dropped triggers
            if other.backend.catalog_waits or outcome:
                break
            time.sleep(0.01)
        assert other.backend.catalog_waits > 0 and not outcome, outcome
    finally:
        hold.release.set()
        thread.join()
        changing.join()
        other.close()
    return results, failures, outcome


@pytest.mark.parametrize("verb", ["deploy", "promote"])
def test_a_switch_waits_for_a_db_insert_that_holds_the_triggers_dropped(db, url, verb):
    first, second = MODELS["lr"](), MODELS["gb"]()
    db.register_model("m", first, sample=FIT)
    db.register_model("m", second, sample=FIT)
    deployed_with_rules(db)
    db.write_table("src", frame(3000, seed=10))
    verbs = {
        "deploy": lambda switcher: switcher.deploy("m", table="t", version=2, runtime="onnx"),
        "promote": lambda switcher: switcher.promote("t", 2, reason="while a db.insert runs"),
    }
    results, failures, switched = _while_a_db_insert_holds_the_triggers(url, verbs[verb])
    assert not failures, failures
    assert results == [3000]
    assert len(switched) == 1 and not isinstance(switched[0], Exception), switched
    assert db.deployment("t").version == 2
    # the held insert was scored by version 1 (deployed when it ran), each row once
    got = scored(db, "t")
    assert set(got.model_version) == {1}
    np.testing.assert_allclose(
        got.probability_1[got.b.abs() <= 2],
        first.predict_proba(got[got.b.abs() <= 2][FEATURES])[:, 1],
        atol=1e-9,
    )
    db.insert("t", "src")  # dropped again, now under version 2's triggers
    got = scored(db, "t")
    assert one_served_each(db, "t") == 6000
    assert set(got.model_version) == {1, 2}
    names = [n for n, _, _ in triggers(db, "t")]
    assert names == ["t_explain", "t_score", "t_score_humility", "t_score_humility_2"]


@pytest.mark.parametrize("verb", ["add", "remove"])
def test_a_humility_rule_waits_for_a_db_insert_that_holds_the_triggers_dropped(db, url, verb):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    deployed_with_rules(db)
    db.write_table("src", frame(3000, seed=12))
    before = triggers(db, "t")
    verbs = {
        "add": lambda other: other.add_humility_rule("t", "wide_c", "outside_range", "c", low=-1.5, high=1.5),
        "remove": lambda other: other.remove_humility_rule("t", "wide_a"),
    }
    results, failures, done = _while_a_db_insert_holds_the_triggers(url, verbs[verb])
    assert not failures, failures
    assert results == [3000]
    assert len(done) == 1 and not isinstance(done[0], Exception), done
    rules = sorted(db.sql("SELECT name FROM indb.humility_rules WHERE deployment = 't'").name)
    assert rules == (["far_b", "wide_a", "wide_c"] if verb == "add" else ["far_b"])
    assert [n for n, _, _ in triggers(db, "t")] == [n for n, _, _ in before]
    db.insert("t", "src")  # the rules in force now check it
    assert one_served_each(db, "t") == 6000


def test_a_switch_that_waits_too_long_names_the_table_and_changes_nothing(db, url):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.register_model("m", MODELS["gb"](), sample=FIT)
    db.deploy("m", table="t", version=1, runtime="sql")
    db.add_humility_rule("t", "wide_a", "outside_range", "a", low=-1.5, high=1.5)
    db.write_table("src", frame(3000, seed=11))
    before = triggers(db, "t")
    with Hold().inserting(url, "t") as (results, failures):
        db.backend.catalog_wait = 0.3
        with pytest.raises(indb.errors.DeploymentError, match="table 't'.*db.insert under way"):
            db.deploy("m", table="t", version=2, runtime="onnx")
        with pytest.raises(indb.errors.DeploymentError, match="table 't'"):
            db.undeploy("t")
        with pytest.raises(indb.errors.DeploymentError, match="table 't'"):
            db.remove_humility_rule("t", "wide_a")  # a humility rule changes the triggers too
    assert not failures, failures
    assert db.deployment("t").version == 1
    assert same_triggers(before, triggers(db, "t"))
    assert one_served_each(db, "t") == 3000


_KILLED_CHILD = """
import pathlib, sys, time
import indb

url, marker = sys.argv[1], pathlib.Path(sys.argv[2])


def hold(value):
    if not marker.exists():
        marker.write_text("dropped")
        time.sleep(300)
    return value


db = indb.connect(url)
db.backend.con.create_function("hold", hold, ["DOUBLE"], "DOUBLE", side_effects=True)
db.insert("t", "SELECT hold(a) AS a, b, c FROM src")
"""


def test_kill_9_during_db_insert_leaves_the_triggers_and_the_committed_rows(tmp_path, url):
    import os
    import signal
    import subprocess
    import sys

    db = indb.connect(url)
    try:
        db.register_model("m", MODELS["lr"](), sample=FIT)
        deployed_with_rules(db)
        db.write_table("src", frame(3000, seed=12))
        db.insert("t", "src")
        before = triggers(db, "t")
    finally:
        db.close()
    marker = tmp_path / "dropped"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, url, str(marker)])
    try:
        for _ in range(1200):
            if marker.exists() or child.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), child.poll()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    db = indb.connect(url)
    try:
        # the drop was never committed (DuckDB numbers the triggers anew when it opens a file)
        assert sorted((n, s) for n, _, s in triggers(db, "t")) == sorted((n, s) for n, _, s in before)
        before = triggers(db, "t")
        assert one_served_each(db, "t") == 3000
        db.sql("INSERT INTO t (a, b, c) VALUES (0.5, 0.5, 0.5)")
        assert one_served_each(db, "t") == 3001
        db.insert("t", "src")
        assert one_served_each(db, "t") == 6001
        assert same_triggers(before, triggers(db, "t"))
    finally:
        db.close()


def test_functions_made_by_a_closed_connection_still_score(db, url):
    """A deploy from another connection makes the version's Python functions (onnx scorer,
    explainer) there; DuckDB's client frees them with that connection while this one's triggers
    still call them (a segmentation fault before): they are kept until the file is closed."""
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.register_model("m", MODELS["gb"](), sample=FIT)
    db.deploy("m", table="t", version=1, runtime="sql", explain=True)
    other = indb.connect(url)
    other.deploy("m", table="t", version=2, runtime="onnx")
    other.close()
    db.sql("INSERT INTO t (a, b, c) VALUES (0.5, 0.5, 0.5)")
    ((explained,),) = db.backend.rows("SELECT count(*) FROM t_explanations")
    assert one_served_each(db, "t") == 1 and explained == len(FEATURES)


def test_the_statements_run_in_the_order_duckdb_fires_the_triggers(db):
    """DuckDB 2.0 fires a table's triggers in the order of their names, not in the order they
    were made: with the scoring trigger made again after the humility triggers, an override
    rule still applies to the served predictions, through the triggers and through db.insert."""
    db.register_model("m", MODELS["lr"](), sample=FIT)
    rows = frame(500, seed=13)
    db.write_table("src", rows)
    for table in ("fast", "fired"):
        db.deploy("m", table=table, runtime="sql")
        db.add_humility_rule(
            table, "far_b", "outside_range", "b", low=-1, high=1, action="override", override=1
        )
        ((kept,),) = db.backend.rows(
            "SELECT statement FROM indb.insert_statements WHERE trigger_name = $t", {"t": f"{table}_score"}
        )
        db.sql(
            f"CREATE OR REPLACE TRIGGER {table}_score AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT {kept}"
        )
        made = [n for n, _, _ in triggers(db, table, by="trigger_oid")]
        assert made == [f"{table}_score_humility", f"{table}_score_humility_2", f"{table}_score"]
    db.insert("fast", "src")
    db.sql("INSERT INTO fired (a, b, c) SELECT a, b, c FROM src")
    fast, fired = scored(db, "fast"), scored(db, "fired")
    far = (rows.b.abs() > 1).to_numpy()
    assert far.any() and (fired.prediction[far] == 1).all()
    columns = ["a", "b", "c", "prediction", "probability_1"]
    pd.testing.assert_frame_equal(fast[columns], fired[columns])


# -- DataFrames staged as Arrow ---------------------------------------------------------------
def every_number_kind(rows: int = 6) -> pd.DataFrame:
    """A column of every numpy kind staged as Arrow, with NaN (as DuckDB reads it: NULL),
    infinities and -0.0 in the float columns."""
    x = pd.DataFrame({f"i{n}": np.arange(rows, dtype=f"int{n}") - 3 for n in (8, 16, 32, 64)})
    for n in (8, 16, 32, 64):
        x[f"u{n}"] = np.arange(rows, dtype=f"uint{n}")
    x["yes"] = np.arange(rows) % 2 == 0
    specials = [np.nan, np.inf, -np.inf, -0.0, 1.5, np.nan]
    x["f32"] = np.array((specials * rows)[:rows], dtype=np.float32)
    x["f64"] = (specials * rows)[:rows]
    x["whole"] = np.linspace(0, 1, rows)  # a float column without NaN: no validity bitmap
    x["both_infinities"] = ([np.inf, -np.inf] * rows)[:rows]  # sums to NaN, holds none
    return x


def test_a_frame_of_numbers_is_staged_as_arrow_over_its_own_memory():
    from indb.backends.duckdb import _arrow_of

    x = every_number_kind()
    staged = _arrow_of(x)
    assert isinstance(staged, pa.Table) and staged.column_names == list(x.columns)
    for name in x.columns:
        if x[name].dtype != bool:  # Arrow packs booleans into bits
            values = staged.column(name).chunk(0).buffers()[1]
            assert values.address == x[name].to_numpy().__array_interface__["data"][0], name
    assert staged.column("f64").null_count == 2 and staged.column("whole").null_count == 0
    assert staged.column("both_infinities").null_count == 0
    others = [
        x.assign(text=["a"] * len(x)),  # strings
        x.assign(when=pd.Timestamp("2026-01-01")),
        x.assign(count=pd.array([1, None, 2, 3, 4, 5], dtype="Int64")),  # pandas' nullable integers
        x.assign(kind=pd.Categorical(["a"] * len(x))),
        x.assign(half=np.ones(len(x), dtype=np.float16)),
        x.rename(columns={"i8": 0}),
        x.rename(columns={"i16": "i8"}),  # a name twice
        pd.DataFrame(index=range(3)),
    ]
    for other in others:
        assert _arrow_of(other) is other  # staged as pandas, as before


@pytest.mark.parametrize("make", [every_number_kind, lambda: every_number_kind().assign(text="t")])
def test_a_staged_frame_reads_as_the_frame_itself(db, make):
    """Arrow or pandas, DuckDB reads the same types and values (NaN as NULL)."""
    x = make()
    backend = db.backend
    backend.con.register("as_pandas", x)
    try:
        with backend.staged(x) as staged:
            for query in ("DESCRIBE SELECT * FROM {}", "SELECT * FROM {}"):
                assert backend.rows(query.format(staged.text)) == backend.rows(query.format("as_pandas"))
            ((nulls,),) = backend.rows(f"SELECT count(*) FILTER (WHERE f64 IS NULL) FROM {staged.text}")
            assert nulls == 2
    finally:
        backend.con.unregister("as_pandas")


@pytest.mark.parametrize("runtime", ["onnx", "sql"])
def test_a_nan_in_a_big_frame_is_refused_and_nothing_changes(db, runtime):
    db.register_model("m", MODELS["lr"](), sample=FIT)
    db.deploy("m", table="fast", runtime=runtime)
    rows = frame(db.backend.skip_triggers_from, seed=14)  # skips the triggers
    rows.loc[1234, "b"] = np.nan  # NULL to DuckDB, as from pandas: the request table refuses it
    with pytest.raises(DatabaseError, match="NOT NULL constraint failed: fast.b"):
        db.insert("fast", rows)
    ((requests, predictions),) = db.backend.rows(
        "SELECT (SELECT count(*) FROM fast), count(*) FROM fast_predictions"
    )
    assert requests == predictions == 0
    rows.loc[1234, "b"] = 0.5
    assert db.insert("fast", rows) == len(rows)
    assert one_served_each(db, "fast") == len(rows)

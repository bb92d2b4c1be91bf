"""indb.predict_batch_<model>(relation, key) on PostgreSQL (issue 17): batch scoring from SQL in
chunks, each one onnxruntime run; parity with scikit-learn, hostile inputs, and the privilege
model (executable by indb's reader and app roles, never by PUBLIC; the relation is read with the
caller's rights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest

from tests.conftest import NUMERIC
from tests.parity import assert_matches_sklearn
from tests.test_trust_postgres import login_role

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
COLUMNS = ", ".join(NUMERIC)
TYPED = ", ".join(f"{c} double precision" for c in NUMERIC)


def _table(db, name: str, frame, key: str = "id", key_type: str = "bigint") -> None:
    db.sql(f"CREATE TABLE {name} ({key} {key_type}, {TYPED}, purpose text)")
    db.write_table(name, frame.assign(**{key.strip('"'): np.arange(len(frame))}), replace=False)


def _scored(conn_or_db, sql: str):
    if hasattr(conn_or_db, "execute"):
        return conn_or_db.execute(sql).fetchall()
    frame = conn_or_db.sql(sql)
    return list(frame.itertuples(index=False, name=None))


def test_batch_scores_every_row_like_sklearn_in_several_chunks(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    frame = loans[[*NUMERIC, "purpose"]]
    _table(db, "applicants", frame)
    # a table of several chunks: small pages per chunk, set for this backend only
    db.sql(
        "DO LANGUAGE plpython3u $$\n"
        "if 'indb_runtime' not in GD:\n    plpy.execute('SELECT indb.load_runtime()')\n"
        "type(GD['indb_runtime']).__init__.__globals__['BATCH_BLOCKS'] = 3\n$$"
    )
    ((pages,),) = _scored(db, "SELECT pg_relation_size('applicants') / 8192")
    assert pages > 6
    rows = _scored(
        db, "SELECT key, prediction, probabilities FROM indb.predict_batch_m('applicants') ORDER BY key"
    )
    assert [r[0] for r in rows] == list(range(len(frame)))
    assert_matches_sklearn(logistic, frame[NUMERIC], [r[1] for r in rows], [r[2] for r in rows])
    # the pinned version and the default agree; a view is read in one pass
    db.sql("CREATE VIEW young AS SELECT * FROM applicants WHERE age < 30")
    pinned = _scored(db, "SELECT key, prediction FROM indb.predict_batch_m_v1('young', 'id') ORDER BY key")
    assert pinned == [(k, p) for k, p, _ in rows if frame.age.iloc[k] < 30]
    assert _scored(db, "SELECT count(*) FROM indb.predict_batch_m('applicants') WHERE false") == [(0,)]


def test_batch_regression_and_string_labels(db, boosted_regressor, loans):
    db.register_model("r", boosted_regressor, sample=loans[NUMERIC])
    frame = loans[[*NUMERIC, "purpose"]].head(300)
    _table(db, "applicants", frame)
    rows = _scored(db, "SELECT * FROM indb.predict_batch_r('applicants') ORDER BY key")
    assert len(rows[0]) == 2  # (key, prediction): no probabilities for a regressor
    assert_matches_sklearn(boosted_regressor, frame[NUMERIC], [r[1] for r in rows])


def test_batch_takes_odd_identifiers_and_integer_keys_of_any_width(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    _table(db, "applicants", loans[[*NUMERIC, "purpose"]].head(50))
    odd = '"Odd ""Schema"""."a ""table""; DROP TABLE x"'
    db.sql('CREATE SCHEMA "Odd ""Schema"""')
    db.sql(f'CREATE TABLE {odd} AS SELECT id::smallint AS "my key", {COLUMNS} FROM applicants')
    rows = _scored(db, f"SELECT * FROM indb.predict_batch_m('{odd}', 'my key')")
    assert sorted(r[0] for r in rows) == list(range(50))


def test_batch_refuses_unknown_names_wrong_types_and_nulls_by_name(db, logistic, loans):
    db.register_model("m", logistic, sample=loans[NUMERIC])
    frame = loans[[*NUMERIC, "purpose"]].head(20)
    _table(db, "applicants", frame)
    cases = {
        "SELECT * FROM indb.predict_batch_m('nowhere')": "does not exist",
        "SELECT * FROM indb.predict_batch_m('applicants', 'ID')": "has no column 'ID'.*did you mean 'id'",
        "SELECT * FROM indb.predict_batch_m('applicants', 'id; DROP TABLE applicants')": "has no column",
        "SELECT * FROM indb.predict_batch_m('applicants', 'purpose')": "'purpose' of public.applicants is",
        "SELECT * FROM indb.predict_batch_m('applicants', NULL)": "key must name an integer column",
        "SELECT * FROM indb.predict_batch_m(NULL)": "no relation",
        "SELECT * FROM indb.predict_batch_m('pg_class')": "has no column 'id'",
    }
    for sql, message in cases.items():
        with pytest.raises(Exception, match=message):
            db.sql(sql)
    db.sql("CREATE TABLE texts (id bigint, income text, debt float8, age bigint, tenure float8)")
    with pytest.raises(Exception, match="column 'income' of public.texts is text; .* needs a number"):
        db.sql("SELECT * FROM indb.predict_batch_m('texts')")
    db.sql("UPDATE applicants SET debt = NULL WHERE id = 3")
    with pytest.raises(Exception, match="'debt' is NULL in 1 row"):
        db.sql("SELECT * FROM indb.predict_batch_m('applicants')")
    db.sql("UPDATE applicants SET debt = 1, id = NULL WHERE id = 3")
    with pytest.raises(Exception, match="key column 'id' is NULL in 1 row"):
        db.sql("SELECT * FROM indb.predict_batch_m('applicants')")
    db.sql("UPDATE applicants SET id = 3, debt = 'NaN' WHERE id IS NULL")
    with pytest.raises(Exception, match="'debt' is NaN or infinite in 1 row"):
        db.sql("SELECT * FROM indb.predict_batch_m('applicants')")


def test_batch_reads_only_what_the_caller_may_read(db, logistic, loans):
    """The functions are for indb's reader and app roles (never PUBLIC); a role scores a table
    only with SELECT on it (row security applies), installing batch functions is the owner's."""
    db.register_model("m", logistic, sample=loans[NUMERIC])
    frame = loans[[*NUMERIC, "purpose"]].head(40)
    _table(db, "secret", frame)
    _table(db, "shared", frame)
    public = db.sql(
        "SELECT p.oid::regprocedure::text AS f FROM pg_proc AS p, aclexplode(coalesce(p.proacl, "
        "acldefault('f', p.proowner))) AS a WHERE p.pronamespace = 'indb'::regnamespace AND a.grantee = 0 "
        "AND p.proname LIKE '%batch%'"
    )
    assert public.empty, f"executable by PUBLIC: {list(public.f)}"
    with login_role(db, "indb_reader") as (name, url):
        db.sql(f'GRANT SELECT ON shared TO "{name}"')
        db.sql("ALTER TABLE shared ENABLE ROW LEVEL SECURITY")
        db.sql(f'CREATE POLICY few ON shared FOR SELECT TO "{name}" USING (id < 10)')
        with psycopg.connect(url, autocommit=True) as reader:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="secret"):
                reader.execute("SELECT * FROM indb.predict_batch_m('secret')")
            rows = reader.execute("SELECT key FROM indb.predict_batch_m('shared') ORDER BY key").fetchall()
            assert [r[0] for r in rows] == list(range(10))
            for call in (
                "SELECT indb.install_batch_functions('m', 1, true)",
                "SELECT indb.load_runtime()",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(call)
            # the loader checks the content hash it is given: a wrong one loads nothing
            with pytest.raises(psycopg.Error, match="IntegrityError"):
                reader.execute("SELECT indb.predict_batch_load('m', 1, 'f00d')")
    with login_role(db) as (_, url), psycopg.connect(url, autocommit=True) as nobody:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            nobody.execute("SELECT * FROM indb.predict_batch_m('shared')")


def test_batch_string_class_labels_come_back_as_they_are(db, loans):
    """Labels travel inside one array literal per chunk: quotes, backslashes, commas, braces and
    the word NULL must come back unchanged."""
    from sklearn.linear_model import LogisticRegression

    names = np.array(['say "no"', "back\\slash", "a,b {c}", "NULL"])
    labels = names[(loans.age.to_numpy() // 10).astype(int) % 4]
    model = LogisticRegression(max_iter=3000).fit(loans[NUMERIC], labels)
    db.register_model("odd", model, sample=loans[NUMERIC])
    frame = loans[[*NUMERIC, "purpose"]].head(200)
    _table(db, "applicants", frame)
    rows = _scored(db, "SELECT key, prediction FROM indb.predict_batch_odd('applicants') ORDER BY key")
    assert [r[1] for r in rows] == list(model.predict(frame[NUMERIC]))
    assert set(r[1] for r in rows) <= set(names) and len(set(r[1] for r in rows)) > 1


def test_boolean_inputs_are_read_by_the_bulk_trigger_and_the_batch_alike(db):
    """Both readers pack a boolean input as int8 through int4, PostgreSQL's only cast of a
    boolean: the bulk trigger cast it to float8 and the batch to int8, and both failed."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "b": rng.integers(0, 2, 300).astype(bool)})
    model = LogisticRegression().fit(frame, (frame.x + frame.b > 0.5).astype(int))
    db.register_model("flags", model, sample=frame)
    db.deploy("flags", table="flag_requests", runtime="onnx")
    db.write_table("flag_rows", frame)
    db.sql("INSERT INTO flag_requests (x, b) SELECT x, b FROM flag_rows")
    stored = db.sql("SELECT prediction, probability_1 FROM flag_requests_predictions ORDER BY id")
    assert_matches_sklearn(model, frame, list(stored.prediction), [[1 - p, p] for p in stored.probability_1])
    batch = _scored(db, "SELECT key, prediction FROM indb.predict_batch_flags('flag_requests') ORDER BY key")
    assert [p for _, p in batch] == list(stored.prediction)

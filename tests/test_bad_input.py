"""Bad input gets an error naming what was wrong, and leaves the database as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import indb
from tests.conftest import NUMERIC

COLUMNS = ", ".join(NUMERIC)


@pytest.fixture
def deployed(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.deploy("loans", table="requests")
    return db


def _row_counts(db) -> tuple[int, int]:
    counts = db.sql(
        "SELECT (SELECT count(*) FROM requests) AS r, (SELECT count(*) FROM requests_predictions) AS p"
    ).iloc[0]
    return int(counts.r), int(counts.p)


def test_unknown_model_suggests_the_near_miss(deployed):
    with pytest.raises(indb.NotFoundError, match=r"model 'laons' does not exist; did you mean 'loans'"):
        deployed.get_model("laons")
    with pytest.raises(LookupError):  # NotFoundError is a LookupError too
        deployed.deploy("nope", table="t2")


def test_unknown_version_and_alias(deployed):
    with pytest.raises(indb.NotFoundError, match=r"version of model 'loans' 7 does not exist.*'1'"):
        deployed.get_model("loans", 7)
    with pytest.raises(indb.NotFoundError, match="alias of model 'loans' 'production'"):
        deployed.deploy("loans", table="t2", version="production")
    with pytest.raises(indb.DatabaseError, match=r"predict_loans_v7(.|\n)*[Dd]id you mean .predict_loans_v1"):
        deployed.sql("SELECT predict_loans_v7(1.0, 2.0, 3, 4.0)")


def test_sample_that_does_not_match_the_estimator(db, logistic, loans):
    with pytest.raises(indb.ModelError, match="does not run on its sample|skl2onnx could not convert"):
        db.register_model("m", logistic, sample=loans[["income", "debt"]])
    with pytest.raises(indb.ModelError, match="hold strings"):
        db.register_model("m", logistic, sample=loans[["income", "debt", "age", "purpose"]])
    with pytest.raises(indb.ModelError, match="DataFrame"):
        db.register_model("m", logistic, sample=loans[NUMERIC].to_numpy())
    with pytest.raises(indb.ModelError, match="not fitted"):
        from sklearn.linear_model import LogisticRegression

        db.register_model("m", LogisticRegression(), sample=loans[NUMERIC])
    with pytest.raises(indb.ModelError, match="cannot register a str"):
        db.register_model("m", "model.onnx", sample=loans[NUMERIC])
    assert db.models().empty and db.sql("SELECT count(*) AS n FROM indb.model_versions").n[0] == 0


def test_malformed_onnx_bytes(db, loans):
    with pytest.raises(indb.ModelError, match="not a valid ONNX model"):
        db.register_model("m", b"\x08\x07garbage", sample=loans[NUMERIC])
    assert db.models().empty


def test_corrupted_blob_is_caught_by_its_sha256(tmp_path, logistic, loans):
    url = f"duckdb://{tmp_path}/corrupt.duckdb"
    with indb.connect(url) as db:
        db.register_model("loans", logistic, sample=loans[NUMERIC])
        db.deploy("loans", table="requests", runtime="onnx")
        db.sql("UPDATE indb.model_versions SET onnx = onnx || '\\x00'::BLOB")
    with indb.connect(url) as db:
        with pytest.raises(indb.IntegrityError, match="'loans' version 1.*sha256"):
            db.get_model("loans")
        with pytest.raises(indb.IntegrityError, match="sha256"):
            db.model_versions("loans")
        with pytest.raises(indb.IntegrityError, match="sha256"):
            db.sql("SELECT predict_loans(1.0, 2.0, 3, 4.0)")
        with pytest.raises(indb.IntegrityError, match="rolled back"):
            db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4)")
        assert _row_counts(db) == (0, 0)


def test_wrong_type_names_the_table_and_expected_types(deployed):
    wrong = r"('abc' to DOUBLE|double precision: \"abc\")(.|\n)*income DOUBLE, debt DOUBLE"
    with pytest.raises(indb.DatabaseError, match=wrong):
        deployed.sql(f"INSERT INTO requests ({COLUMNS}) VALUES ('abc', 1, 2, 3)")
    assert _row_counts(deployed) == (0, 0)


def test_missing_feature_column_and_null(deployed):
    null = 'NOT NULL constraint failed: requests.{0}|column "{0}" of relation "requests" violates not-null'
    with pytest.raises(indb.DatabaseError, match=null.format("tenure")):
        deployed.sql("INSERT INTO requests (income, debt, age) VALUES (1, 2, 3)")
    with pytest.raises(indb.DatabaseError, match=null.format("debt")):
        deployed.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4), (5, NULL, 7, 8)")
    assert _row_counts(deployed) == (0, 0)


def test_null_in_an_adopted_nullable_table_is_refused_by_the_model(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.sql("CREATE TABLE requests (income DOUBLE PRECISION, debt DOUBLE PRECISION, age BIGINT, tenure FLOAT)")
    db.deploy("loans", table="requests")
    null_age = r"input column 'age' is NULL in 1 row\(s\).*BIGINT|input of this model is NULL.*age"
    with pytest.raises(indb.ScoringError, match=null_age):
        db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4), (5, 6, NULL, 8)")
    assert _row_counts(db) == (0, 0)
    with pytest.raises(indb.ScoringError, match="'debt' is NULL|input of this model is NULL.*debt"):
        db.sql("SELECT predict_loans(1.0, NULL, 3, 4.0)")


@pytest.mark.parametrize(
    "name", ["Loans", "loans; DROP TABLE x", "x y", "", "1model", 'a"b', "o'neil", "a" * 41, 3]
)
def test_model_names_must_be_plain_identifiers(db, logistic, loans, name):
    with pytest.raises(indb.InvalidNameError, match="model name"):
        db.register_model(name, logistic, sample=loans[NUMERIC])
    assert db.models().empty


@pytest.mark.parametrize("table", ["Requests", "t; DROP TABLE indb.models", "a.b", 'x"y'])
def test_table_names_must_be_plain_identifiers(deployed, table):
    with pytest.raises(indb.InvalidNameError, match="table name"):
        deployed.deploy("loans", table=table)
    assert len(deployed.deployments()) == 1


def test_hostile_and_reserved_column_names(db, loans):
    from sklearn.linear_model import LinearRegression

    frame = loans[["income", "debt"]].rename(columns={"debt": 'debt"); DROP TABLE x; --'})
    with pytest.raises(indb.InvalidNameError, match="column name"):
        db.register_model("m", LinearRegression().fit(frame, loans.loss), sample=frame)
    frame = loans[["income", "debt"]].rename(columns={"debt": "id"})
    with pytest.raises(indb.ModelError, match="'id' clashes"):
        db.register_model("m", LinearRegression().fit(frame, loans.loss), sample=frame)


def test_adopting_a_table_without_the_model_columns(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.sql("CREATE TABLE requests (income DOUBLE PRECISION, debt DOUBLE PRECISION, age VARCHAR)")
    with pytest.raises(
        indb.DeploymentError,
        match=r"requests.age is VARCHAR; the model needs BIGINT; no column 'tenure'",
    ):
        db.deploy("loans", table="requests")
    assert db.deployments().empty
    tables = db.sql("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'requests_%'")
    assert tables.empty


def test_a_failed_deploy_leaves_no_half_deployment(db, logistic, boosted_regressor, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.register_model("loss", boosted_regressor, sample=loans[NUMERIC])
    db.deploy("loans", table="requests")
    with pytest.raises(indb.DeploymentError, match="predicts DOUBLE"):
        db.deploy("loss", table="requests")
    assert db.deployment("requests").model == "loans"
    db.sql(f"INSERT INTO requests ({COLUMNS}) VALUES (1, 2, 3, 4)")
    assert _row_counts(db) == (1, 1)


def test_metrics_must_be_json(db, logistic, loans):
    with pytest.raises(indb.ModelError, match="metrics must be a dict"):
        db.register_model("m", logistic, sample=loans[NUMERIC], metrics=[0.9])
    mv = db.register_model("m", logistic, sample=loans[NUMERIC], metrics={"auc": np.float64(0.91)})
    assert mv.metrics == {"auc": 0.91}


@pytest.mark.parametrize("text", ["", "   \n", None, 5])
def test_sql_without_a_statement_is_refused_clearly(db, text):
    with pytest.raises(indb.QueryError, match="SQL text"):
        db.sql(text)


def test_sql_of_only_comments_is_refused_clearly(db):
    with pytest.raises(indb.QueryError, match="only comments"):
        db.sql("-- nothing here\n/* nor here */")
    assert db.sql("SELECT 1 AS one")["one"].tolist() == [1]


@pytest.mark.parametrize("rows", [60, 3000])  # PL/Python inserts under 1,000 rows, COPYs more
@pytest.mark.parametrize("runtime", ["onnx", "sql"])
def test_a_null_id_in_an_adopted_table_is_refused_whole(db, logistic, loans, runtime, rows):
    """An adopted table's own id column may allow NULL: such a row cannot be keyed to its
    prediction, so the insert is refused whole, with an error naming the NULL id (the bulk
    read skipped it, and the ids after it no longer lined up with the rows)."""
    db.register_model("loans", logistic, sample=loans[NUMERIC])
    db.sql(
        "CREATE TABLE requests (id BIGINT, income DOUBLE PRECISION, debt DOUBLE PRECISION, "
        "age BIGINT, tenure FLOAT)"
    )
    db.deploy("loans", table="requests", runtime=runtime)
    values = [f"({i}, {i}, 2, 3, 4)" for i in range(1, rows)] + ["(NULL, 9, 9, 9, 9)", "(100000, 1, 2, 3, 4)"]
    null_id = r"NULL id|null value in column .id.|NOT NULL constraint failed: requests_predictions.id"
    if runtime == "onnx" and db.backend.name == "postgresql":
        null_id = r"^1 row\(s\) have a NULL id"  # PL/Python reads the rows in bulk
    with pytest.raises((indb.ScoringError, indb.DatabaseError), match=null_id):
        db.sql(f"INSERT INTO requests (id, {COLUMNS}) VALUES {', '.join(values)}")
    assert _row_counts(db) == (0, 0)
    db.sql(f"INSERT INTO requests (id, {COLUMNS}) VALUES (7, 1, 2, 3, 4), (8, 5, 6, 7, 8)")
    scored = db.sql("SELECT id, prediction FROM requests_predictions ORDER BY id")
    expected = logistic.predict(pd.DataFrame([[1, 2, 3, 4], [5, 6, 7, 8]], columns=NUMERIC))
    assert scored.id.tolist() == [7, 8] and scored.prediction.tolist() == expected.tolist()

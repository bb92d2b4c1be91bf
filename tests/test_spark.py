"""The compiled SQL of every model of test_compiler, rendered for Spark and run on a local
Spark, against onnxruntime. Skipped without pyspark (``pip install -e '.[spark]'``) or Java."""

from __future__ import annotations

import contextlib
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java: no java on PATH and no JAVA_HOME", allow_module_level=True)

import indb  # noqa: E402
from indb.compiled import compile_version  # noqa: E402
from tests.test_compiler import (  # noqa: E402
    MODELS,
    _fit,
    assert_outputs_match_onnx,
    register_parity_model,
    training_frame,
)

# ANSI mode is the default from Spark 4.0 on (errors on overflow and division by zero), not before
ANSI = ("true", "false")
SPARK_TYPES = {"DOUBLE": "DOUBLE", "BIGINT": "BIGINT", "BOOLEAN": "BOOLEAN", "VARCHAR": "STRING"}


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("indb-tests")
        .config("spark.driver.memory", "3g")  # multiclass SVC SQL (~1 MB) runs out of 1g
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def frame():
    return training_frame()


@pytest.fixture(scope="module")
def db():
    database = indb.connect("duckdb:///:memory:")
    yield database
    database.close()


def spark_frame(spark, sig, rows: pd.DataFrame, *, nan_as_null: bool):
    """``rows`` as a Spark DataFrame with the signature's column types and a row number.
    ``nan_as_null``: a NaN becomes NULL, as DuckDB reads it from pandas; else it stays NaN."""
    schema = ", ".join(["indb_row BIGINT"] + [f"`{i.name}` {SPARK_TYPES[i.sql_type]}" for i in sig.inputs])

    def cell(value, spec):
        if value is None or (isinstance(value, float) and math.isnan(value) and nan_as_null):
            return None
        if spec.sql_type == "BIGINT":
            return int(value)
        if spec.sql_type == "DOUBLE":
            return float(value)
        if spec.sql_type == "BOOLEAN":
            return bool(value)
        return str(value)

    records = [
        (n, *(cell(v, spec) for v, spec in zip(values, sig.inputs, strict=True)))
        for n, values in enumerate(rows[sig.columns].itertuples(index=False, name=None))
    ]
    return spark.createDataFrame(records, schema=schema)


@contextlib.contextmanager
def ansi_mode(spark, enabled: str):
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", enabled)
    try:
        yield
    finally:
        spark.conf.set("spark.sql.ansi.enabled", previous)


def run_on_spark(spark, compiled, data) -> pd.DataFrame:
    """o0 the prediction, o1.. the probabilities, in row order."""
    data.createOrReplaceTempView("indb_rows")
    prediction = compiled.prediction_sql("spark")
    probabilities = compiled.probabilities_array_sql("spark")
    result = spark.sql(
        f"SELECT {prediction} AS o0, {probabilities} AS p FROM indb_rows ORDER BY indb_row"
    ).collect()
    width = len(compiled.probabilities)
    got = pd.DataFrame({"o0": [r.o0 for r in result]})
    for r in result:
        assert len(r.p) == width, f"probability array of {len(r.p)} values, expected {width}"
    for i in range(width):
        got[f"o{i + 1}"] = [r.p[i] for r in result]
    return got


@pytest.mark.parametrize("name", list(MODELS))
def test_spark_sql_matches_onnxruntime(spark, db, frame, name):
    mv, _, rows = register_parity_model(db, name, frame)
    compiled = compile_version(mv)
    frames = [spark_frame(spark, mv.signature, rows, nan_as_null=True)]
    if name.startswith("imputer"):
        rows.loc[::3, "tenure"] = np.nan
        # NULL as DuckDB sees a pandas NaN, and a stored NaN, which Spark keeps apart from NULL
        frames = [spark_frame(spark, mv.signature, rows, nan_as_null=n) for n in (True, False)]
        rows = pd.concat([rows, rows], ignore_index=True)
    for ansi in ANSI:
        with ansi_mode(spark, ansi):
            got = pd.concat([run_on_spark(spark, compiled, f) for f in frames], ignore_index=True)
        assert_outputs_match_onnx(mv, compiled, got, f"{name} (spark.sql.ansi.enabled={ansi})", rows)


@pytest.mark.parametrize("name", ["logistic", "random_forest", "gradient_boosting_regressor"])
def test_spark_null_input_raises(spark, db, frame, name):
    model, columns = _fit(name, frame)
    db.register_model(f"guard_{name}", model, sample=frame[columns])
    mv = db.get_model(f"guard_{name}")
    compiled = compile_version(mv)
    rows = frame[columns].head(3).astype({"tenure": float})
    rows.loc[1, "tenure"] = np.nan
    data = spark_frame(spark, mv.signature, rows, nan_as_null=True)
    data.createOrReplaceTempView("indb_rows")
    for ansi in ANSI:
        with ansi_mode(spark, ansi):
            for text in (compiled.prediction_sql("spark"), compiled.probabilities_array_sql("spark")):
                with pytest.raises(Exception, match="ScoringError: an input of this model is NULL"):
                    spark.sql(f"SELECT {text} FROM indb_rows").collect()
    ok = spark_frame(spark, mv.signature, rows.drop(index=1), nan_as_null=True)
    got = run_on_spark(spark, compiled, ok)
    # one column per probability, indexed from 0 in Spark
    columns = compiled.probabilities_sql("spark", width=len(compiled.probabilities) + 1)
    ok.createOrReplaceTempView("indb_rows")
    separate = spark.sql(f"SELECT {', '.join(columns)} FROM indb_rows ORDER BY indb_row").collect()
    for i in range(len(compiled.probabilities)):
        assert [r[i] for r in separate] == list(got[f"o{i + 1}"])
    assert all(r[-1] is None for r in separate)

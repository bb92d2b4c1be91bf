"""Shared fixtures: real databases, real scikit-learn models, real onnxruntime."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

import indb

pytest_plugins = ["tests.pg_fixtures", "tests.browser_fixtures"]

NUMERIC = ["income", "debt", "age", "tenure"]


@pytest.fixture(scope="session")
def pg_template(pg_dsn) -> str:
    """A PostgreSQL database with PL/Python and indb's catalog, copied for each test."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS indb_template")
        admin.execute("CREATE DATABASE indb_template")
    indb.connect(pg_database(pg_dsn, "indb_template")).close()
    return "indb_template"


def pg_database(dsn: str, name: str) -> str:
    return urlsplit(dsn)._replace(path=f"/{name}").geturl()


@pytest.fixture(params=["duckdb", "postgresql"])
def db(request, tmp_path):
    """An empty indb database on each backend (PostgreSQL: a fresh database per test)."""
    if request.param == "duckdb":
        database = indb.connect(f"duckdb://{tmp_path}/test.duckdb")
        yield database
        database.close()
        return
    import psycopg

    dsn, template = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_template")
    name = f"indb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    database = indb.connect(pg_database(dsn, name))
    yield database
    database.close()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def loan_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Loan applications: numeric and categorical columns and labels that depend on both."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(55_000, 15_000, rows).round(2),
            "debt": rng.gamma(2.0, 6_000, rows).round(2),
            "age": rng.integers(18, 80, rows).astype(np.int64),
            "tenure": rng.exponential(5, rows).round(1),
            "purpose": rng.choice(["car", "home", "education", "business"], rows),
        }
    )
    score = (
        (frame.income - 2.0 * frame.debt) / 20_000
        + 0.4 * (frame.purpose == "home")
        - 0.3 * (frame.purpose == "business")
        + rng.normal(0, 0.5, rows)
    )
    frame["label"] = np.where(score > 1.2, "repaid", "default")
    # Expected loss in thousands: onnxruntime's tree regressors sum in float32, so values of
    # this size keep their error near 1e-6.
    frame["loss"] = (frame.debt * 0.3 - frame.income * 0.05 + rng.normal(0, 500, rows)) / 1000
    return frame


@pytest.fixture(scope="session")
def loans() -> pd.DataFrame:
    return loan_frame(2_000)


@pytest.fixture(scope="session")
def fresh_loans() -> pd.DataFrame:
    """Rows the models were not trained on."""
    return loan_frame(500, seed=1)


@pytest.fixture(scope="session")
def logistic(loans):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression()).fit(loans[NUMERIC], loans.label)


@pytest.fixture(scope="session")
def forest(loans):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0)
    return model.fit(loans[NUMERIC], loans.label == "repaid")


@pytest.fixture(scope="session")
def boosted_regressor(loans):
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0)
    return model.fit(loans[NUMERIC], loans.loss)


@pytest.fixture(scope="session")
def mixed_pipeline(loans):
    """ColumnTransformer(StandardScaler on numbers, OneHotEncoder on strings) + classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = NUMERIC + ["purpose"]
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("numbers", StandardScaler(), NUMERIC),
                        ("strings", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=500)),
        ]
    )
    return pipeline.fit(loans[columns], loans.label)


def feature_columns(model) -> list[str]:
    return list(model.feature_names_in_)

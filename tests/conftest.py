"""Shared fixtures: real databases, real models."""

from __future__ import annotations

import indb
import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def db(tmp_path):
    database = indb.connect(f"duckdb://{tmp_path}/test.duckdb")
    yield database
    database.close()


def loan_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Loan applications: numeric and categorical columns and a label that depends on both."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(55_000, 15_000, rows).round(2),
            "debt": rng.gamma(2.0, 6_000, rows).round(2),
            "age": rng.integers(18, 80, rows),
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
    return frame


@pytest.fixture(scope="session")
def loans():
    return loan_frame(2_000)

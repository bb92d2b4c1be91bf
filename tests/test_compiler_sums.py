"""A forest's sum reaches the engines as the balanced tree the compiler built.

sqlglot writes ``Add(Add(a, b), Add(c, d))`` as ``a + b + c + d``, which every engine parses as
a left-deep chain, and DuckDB plans a chain of T trees in O(T^2) (benchmarks/RESULTS.md, issue
17 third pass). Tree ensembles therefore group their partial sums in parentheses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sqlglot import exp

import indb
from indb.udfs.compiler import dialects, sql


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_grouped_sums_keep_their_parentheses(dialect):
    terms = [exp.column(f"t{i}") for i in range(7)]
    assert dialects.render(sql.total(terms, grouped=True), dialect) == (
        "(((t0 + t1) + (t2 + t3)) + ((t4 + t5) + t6))"
    )
    assert dialects.render(sql.total(terms), dialect) == "t0 + t1 + t2 + t3 + t4 + t5 + t6"
    assert sql.total([1.0, 2.0], grouped=True) == 3.0


def test_a_forest_sum_is_grouped_and_exact():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((500, 3)), columns=["a", "b", "c"])
    model = GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0)
    model.fit(x, (x.a + x.b * x.c > 0).astype(int))
    with indb.connect("duckdb:///:memory:") as db:
        db.register_model("gb", model, sample=x)
        db.deploy("gb", table="requests", runtime="sql")
        text = db.compile_sql("gb")
        assert "END) + (CASE" in text  # two trees added inside their own parentheses
        db.write_table("src", x)
        got = db.sql("SELECT predict_proba_gb(a, b, c)[2] AS p FROM src")["p"].to_numpy()
    assert np.abs(got - model.predict_proba(x)[:, 1]).max() < 1e-6

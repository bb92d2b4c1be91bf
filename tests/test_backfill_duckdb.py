"""DuckDB side of 11.4: a switch does not backfill; an adopted table is backfilled once."""

from __future__ import annotations

import indb
from tests.conftest import NUMERIC, loan_frame
from tests.switch_stress import models


def test_a_duckdb_switch_does_not_backfill(tmp_path, loans):
    db = indb.connect(f"duckdb://{tmp_path}/t.duckdb")
    try:
        for model in models(loans).values():
            db.register_model("m", model, sample=loans[NUMERIC])
        frame = loan_frame(300, seed=4)[NUMERIC]
        db.sql("CREATE TABLE requests (income DOUBLE, debt DOUBLE, age BIGINT, tenure DOUBLE)")
        db.backend.write_table("src", frame, replace=True)
        db.sql("INSERT INTO requests SELECT * FROM src")
        db.deploy("m", table="requests", version=1)
        switched = db.deploy("m", table="requests", version=2)
        assert not [s for s in switched.statements if "NOT EXISTS" in s]
        db.sql(f"INSERT INTO requests ({', '.join(NUMERIC)}) SELECT * FROM src LIMIT 10")
        counts = db.sql(
            "SELECT model_version, count(*) AS n, count(DISTINCT id) AS ids FROM requests_predictions "
            "GROUP BY 1 ORDER BY 1"
        )
        assert counts.values.tolist() == [[1, 300, 300], [2, 10, 10]]
    finally:
        db.close()

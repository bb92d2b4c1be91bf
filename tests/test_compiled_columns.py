"""A compiled deployment computes a model's shared values once per row for all its outputs.

PostgreSQL: the trigger's statement carries them as columns of the rows
(``CompiledModel.outputs_columns``), where the helper-function chains of the ``predict_*``
functions computed a forest's sum once per output; verification runs that same form. DuckDB:
verification runs the outputs struct inside a lambda, out of the optimizer's reach. Both must
give the answers of the separate expressions, refuse bad inputs with the guard's error, and
(PostgreSQL) run without JIT whatever the session set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indb.compiled import compile_version, evaluate
from tests.test_compiler import register_parity_model, training_frame

MODELS = ["gradient_boosting", "random_forest_multiclass", "mlp", "logistic"]


@pytest.fixture(scope="module")
def frame():
    return training_frame()


@pytest.mark.parametrize("name", MODELS)
def test_a_row_with_a_missing_input_raises_the_guard_before_any_shared_value(db, name, frame):
    mv, columns, rows = register_parity_model(db, name, frame)
    compiled = compile_version(mv)
    bad = pd.DataFrame([{**rows.iloc[0].to_dict(), columns[0]: np.nan}], columns=columns)
    bad[columns[0]] = bad[columns[0]].astype(float)  # NULL or NaN: the guard refuses both
    with pytest.raises(Exception, match="ScoringError"):
        evaluate(db.backend, compiled, bad, together=True)


def test_postgresql_trigger_computes_a_forest_once_without_helpers_and_without_jit(db, frame):
    if db.backend.dialect != "postgres":
        pytest.skip("PostgreSQL: the trigger's statement and its function settings")
    mv, columns, rows = register_parity_model(db, "gradient_boosting", frame)
    db.deploy(mv.name, table="requests", runtime="sql")
    ((config, source),) = db.backend.rows(
        "SELECT proconfig, prosrc FROM pg_proc WHERE oid = 'indb.score_requests()'::regprocedure"
    )
    assert "jit=off" in config
    assert "indb_l1" in source and "compiled_" not in source  # no helper chain, one level
    db.sql("SET jit = on")
    db.sql("SET jit_above_cost = 0")  # the session asks for JIT everywhere: the trigger has none
    sample = rows.iloc[:300]
    names = ", ".join(columns)
    db.write_table("src", sample.reset_index(drop=True))
    db.sql(f"INSERT INTO requests ({names}) SELECT {names} FROM src")
    got = db.sql(
        "SELECT p.prediction, p.probability_repaid FROM requests AS r JOIN requests_predictions AS p "
        "USING (id) ORDER BY r.id"
    )
    apart = evaluate(db.backend, compile_version(mv), sample)
    assert [str(v) for v in got.prediction] == [str(v) for v in apart.o0]
    repaid = list(mv.signature.classes).index("repaid") + 1
    np.testing.assert_array_equal(got.probability_repaid.to_numpy(float), apart[f"o{repaid}"].to_numpy(float))

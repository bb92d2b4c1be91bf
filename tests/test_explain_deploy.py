"""Issue 15.1 and 15.4: explanations written by the scoring trigger beside each prediction,
db.explain, explain_<model> in SQL and `indb explain`, on both backends."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from indb.errors import DeploymentError, IndbError, NotFoundError
from tests.conftest import NUMERIC

COLUMNS = NUMERIC + ["purpose"]


def insert(db, table: str, frame: pd.DataFrame) -> None:
    db.write_table("batch", frame, replace=True)
    names = ", ".join(frame.columns)
    db.sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM batch")


def totals(db, table: str) -> pd.DataFrame:
    """Per request id: base + sum(contribution), the served prediction and its probabilities."""
    return db.sql(
        f"""SELECT e.id, e.base + sum(e.contribution) AS raw, count(*) AS features,
                   max(p.prediction) AS prediction, max(p.probability_repaid) AS p
            FROM {table}_explanations AS e JOIN {table}_predictions AS p ON p.id = e.id AND p.served
            GROUP BY e.id, e.base ORDER BY e.id"""
    )


@pytest.mark.parametrize("runtime", ["sql", "onnx"])
def test_linear_pipeline_explanations_add_up_to_the_log_odds(db, mixed_pipeline, loans, fresh_loans, runtime):
    db.register_model("loans", mixed_pipeline, sample=loans[COLUMNS])
    deployment = db.deploy("loans", table="loan_requests", runtime=runtime, explain=True)
    assert deployment.runtime == runtime
    insert(db, "loan_requests", fresh_loans[COLUMNS].head(60))
    found = totals(db, "loan_requests")
    assert len(found) == 60 and set(found.features) == {5}  # one row per request column
    logit = np.log(found.p / (1 - found.p))
    assert np.max(np.abs(found.raw - logit)) < 1e-6
    top = db.sql("SELECT * FROM loan_requests_explanations WHERE id = 42 ORDER BY abs(contribution) DESC")
    assert list(top.columns) == ["id", "feature", "contribution", "base", "error"]
    assert sorted(top.feature) == sorted(COLUMNS)  # purpose's one-hot columns summed back to it
    assert list(top.contribution.abs()) == sorted(top.contribution.abs(), reverse=True)
    assert top.error.isna().all()  # exact
    ((method,),) = db.sql("SELECT explain_method FROM indb.deployments").itertuples(index=False)
    assert method == "linear"
    assert db.deployments().set_index("table_name").explains.to_dict() == {"loan_requests": "linear"}


def test_contributions_are_the_closed_form_of_a_scaled_logistic_regression(db, logistic, loans, fresh_loans):
    """w_j (x_j - E[x_j]) with w the coefficients over the scaler's scale and E the mean of the
    stored registration sample (its first 200 rows)."""
    db.register_model("plain", logistic, sample=loans[NUMERIC])
    db.deploy("plain", table="plain_requests", runtime="sql", explain=True)
    rows = fresh_loans[NUMERIC].head(20).reset_index(drop=True)
    insert(db, "plain_requests", rows)
    stored = db.sql("SELECT id, feature, contribution, base FROM plain_requests_explanations ORDER BY id")
    scaler, model = logistic[0], logistic[-1]
    weights = model.coef_[0] / scaler.scale_
    mean = loans[NUMERIC].head(200).mean().to_numpy()
    expected = (rows.to_numpy() - mean) * weights
    ids = sorted(stored.id.unique())
    for i, request in enumerate(ids):
        got = stored[stored.id == request].set_index("feature").contribution
        np.testing.assert_allclose([got[c] for c in NUMERIC], expected[i], atol=1e-9)
    base = model.intercept_[0] + ((mean - scaler.mean_) / scaler.scale_) @ model.coef_[0]
    assert stored.base.iloc[0] == pytest.approx(base, abs=1e-9)


def test_linear_regression_explanations_add_up_to_the_prediction(db, loans, fresh_loans):
    from sklearn.linear_model import Ridge

    model = Ridge().fit(loans[NUMERIC], loans.loss)
    db.register_model("loss", model, sample=loans[NUMERIC])
    db.deploy("loss", table="loss_requests", explain=True)
    insert(db, "loss_requests", fresh_loans[NUMERIC].head(30))
    found = db.sql(
        """SELECT e.id, e.base + sum(e.contribution) AS raw, max(p.prediction) AS prediction
           FROM loss_requests_explanations AS e JOIN loss_requests_predictions AS p ON p.id = e.id
           GROUP BY e.id, e.base"""
    )
    assert len(found) == 30
    assert np.max(np.abs(found.raw - found.prediction)) < 1e-6


def test_db_explain_and_the_sql_function_agree_with_the_stored_rows(db, mixed_pipeline, loans):
    db.register_model("loans", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("loans", table="loan_requests", explain=True)
    row = {"income": 52000.0, "debt": 9000.0, "age": 35, "tenure": 3.0, "purpose": "car"}
    insert(db, "loan_requests", pd.DataFrame([row]))
    stored = db.sql("SELECT feature, contribution, base FROM loan_requests_explanations")
    frame = db.explain("loans", row)
    assert list(frame.columns) == ["row", "feature", "contribution", "base", "output", "error"]
    assert list(frame.contribution.abs()) == sorted(frame.contribution.abs(), reverse=True)
    assert frame.attrs["output"] == "log-odds of class 'repaid'" and frame.attrs["exact"]
    merged = frame.merge(stored, on="feature", suffixes=("", "_stored"))
    assert len(merged) == 5
    np.testing.assert_allclose(merged.contribution, merged.contribution_stored, atol=1e-9)
    assert frame.base[0] == pytest.approx(stored.base[0], abs=1e-9)
    assert frame.output[0] == pytest.approx(frame.base[0] + frame.contribution.sum(), abs=1e-12)
    if db.backend.nested_types:  # DuckDB: a list of structs
        (value,) = db.sql("SELECT explain_loans(52000.0, 9000.0, 35, 3.0, 'car') AS e").e
        called = {item["feature"]: item["contribution"] for item in value}
    else:  # PostgreSQL: a set-returning function
        rows = db.sql("SELECT * FROM indb.explain_loans(52000, 9000, 35, 3, 'car')")
        called = dict(zip(rows.feature, rows.contribution, strict=True))
    for feature, contribution in zip(frame.feature, frame.contribution, strict=True):
        assert called[feature] == pytest.approx(contribution, abs=1e-9)
    several = db.explain("loans", [row, {**row, "purpose": "home"}])
    assert sorted(several.row.unique()) == [0, 1]


def test_redeploy_keeps_explanations_and_false_stops_them(db, logistic, loans, fresh_loans):
    db.register_model("plain", logistic, sample=loans[NUMERIC])
    db.register_model("plain", logistic, sample=loans[NUMERIC].head(300))
    db.deploy("plain", table="requests", version=1, explain=True)
    insert(db, "requests", fresh_loans[NUMERIC].head(5))
    db.deploy("plain", table="requests", version=2)  # a switch keeps explaining, the new version
    insert(db, "requests", fresh_loans[NUMERIC].head(5))
    db.deploy("plain", table="requests", version=2, runtime="onnx")  # and a switch of runtime
    insert(db, "requests", fresh_loans[NUMERIC].head(5))
    counts = db.sql(
        """SELECT p.model_version, p.runtime, count(DISTINCT e.id) AS n FROM requests_explanations AS e
           JOIN requests_predictions AS p ON p.id = e.id GROUP BY 1, 2 ORDER BY 1, 2"""
    )
    assert counts.values.tolist() == [[1, "sql", 5], [2, "onnx", 5], [2, "sql", 5]]
    db.deploy("plain", table="requests", version=2, explain=False)
    insert(db, "requests", fresh_loans[NUMERIC].head(5))
    ((explained,),) = db.sql("SELECT count(DISTINCT id) FROM requests_explanations").values
    ((method,),) = db.sql("SELECT count(explain_method) FROM indb.deployments").values
    assert explained == 15 and method == 0
    db.undeploy("requests", drop_tables=True)
    assert db.backend.table_columns("requests_explanations") is None


@pytest.mark.parametrize("mode", ["shadow", "split"])
def test_only_served_champion_rows_are_explained(db, logistic, loans, fresh_loans, mode):
    db.register_model("plain", logistic, sample=loans[NUMERIC])
    db.register_model("plain", logistic, sample=loans[NUMERIC].head(300))
    db.deploy("plain", table="requests", version=1, explain=True)
    db.add_challenger("requests", 2, mode=mode, weight=0.5)
    insert(db, "requests", fresh_loans[NUMERIC].head(40))
    champion = db.sql("SELECT count(*) AS n FROM requests_predictions WHERE served AND model_version = 1").n[
        0
    ]
    explained = db.sql(
        """SELECT count(DISTINCT e.id) AS n, count(*) AS k, count(DISTINCT p.model_version) AS versions
           FROM requests_explanations AS e JOIN requests_predictions AS p ON p.id = e.id AND p.served"""
    )
    assert explained.n[0] == champion and explained.k[0] == 4 * champion
    assert explained.versions[0] == 1
    assert (champion == 40) == (mode == "shadow")


def test_bad_input_is_refused_and_changes_nothing(db, logistic, loans):
    db.register_model("plain", logistic, sample=loans[NUMERIC])
    with pytest.raises(NotFoundError, match="nope"):
        db.deploy("nope", table="requests", explain=True)
    with pytest.raises(NotFoundError, match="nope"):
        db.explain("nope", {"income": 1.0})
    with pytest.raises(IndbError, match="debt"):
        db.explain("plain", {"income": 1.0, "age": 3, "tenure": 1.0})
    if "row" in db.backend.scoring_modes:
        with pytest.raises(DeploymentError, match="bulk mode"):
            db.deploy("plain", table="requests", mode="row", explain=True)
    assert db.backend.table_columns("requests") is None
    assert db.backend.table_columns("requests_explanations") is None


def test_cli_prints_contributions_sorted_with_base_and_output(db, mixed_pipeline, loans, capsys):
    from indb.cli import main

    db.register_model("loans", mixed_pipeline, sample=loans[COLUMNS])
    url = db.url if db.backend.name != "duckdb" else f"duckdb://{db.backend.path}"
    row = json.dumps({"income": 52000, "debt": 9000, "age": 35, "tenure": 3, "purpose": "car"})
    assert main(["explain", "loans", "--row", row, "--db", url, "--json"]) in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert out["output"] == pytest.approx(out["base"] + sum(c["contribution"] for c in out["contributions"]))
    magnitudes = [abs(c["contribution"]) for c in out["contributions"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert main(["explain", "loans", "--row", row, "--db", url]) in (0, None)
    text = capsys.readouterr().out
    assert "base" in text and "purpose" in text and "log-odds" in text


def test_tree_ensemble_explanations_are_written_next_to_onnxruntime(
    db, boosted_regressor, loans, fresh_loans
):
    """TreeSHAP (indb.udfs.explain) in the insert's statement: a DuckDB Arrow function, or the
    PL/Python runtime inside PostgreSQL; the same values as db.explain."""
    db.register_model("loss", boosted_regressor, sample=loans[NUMERIC])
    db.deploy("loss", table="loss_requests", runtime="onnx", explain=True)
    rows = fresh_loans[NUMERIC].head(25).reset_index(drop=True)
    insert(db, "loss_requests", rows)
    found = db.sql(
        """SELECT e.id, e.base + sum(e.contribution) AS raw, max(p.prediction) AS prediction,
                  count(*) AS features, count(e.error) AS errors
           FROM loss_requests_explanations AS e JOIN loss_requests_predictions AS p ON p.id = e.id
           GROUP BY e.id, e.base ORDER BY e.id"""
    )
    assert len(found) == 25 and set(found.features) == {4} and found.errors.sum() == 0
    # onnxruntime sums the trees in float32: values of this size agree to ~1e-6
    assert np.max(np.abs(found.raw - found.prediction)) < 1e-5
    ((method,),) = db.sql("SELECT explain_method FROM indb.deployments").values
    assert method == "treeshap" or "tree" in method
    first = db.sql("SELECT feature, contribution FROM loss_requests_explanations WHERE id = 1")
    direct = db.explain("loss", rows.head(1))
    merged = direct.merge(first, on="feature", suffixes=("", "_stored"))
    np.testing.assert_allclose(merged.contribution, merged.contribution_stored, atol=1e-9)
    values = rows.iloc[0]
    arguments = ", ".join(f"{float(values[c])!r}" if c != "age" else str(int(values[c])) for c in NUMERIC)
    if db.backend.nested_types:  # DuckDB: the explainer of this process, one call per row
        (value,) = db.sql(f"SELECT explain_loss({arguments}) AS e").e
        called = {item["feature"]: item["contribution"] for item in value}
    else:  # PostgreSQL: PL/Python
        found = db.sql(f"SELECT * FROM indb.explain_loss({arguments})")
        called = dict(zip(found.feature, found.contribution, strict=True))
    for feature, contribution in zip(direct.feature, direct.contribution, strict=True):
        assert called[feature] == pytest.approx(contribution, abs=1e-9)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_app_role_inserts_and_reads_explanations_but_cannot_write_them(db, logistic, forest, loans):
    import psycopg

    from tests.test_trust_postgres import login_role

    db.register_model("plain", logistic, sample=loans[NUMERIC])
    db.register_model("trees", forest, sample=loans[NUMERIC])
    db.deploy("plain", table="linear_requests", runtime="sql", explain=True)
    db.deploy("trees", table="tree_requests", runtime="onnx", explain=True)
    columns = ", ".join(NUMERIC)
    with login_role(db, "indb_app") as (_, app_url), login_role(db, "indb_reader") as (_, reader_url):
        with psycopg.connect(app_url, autocommit=True) as app:
            for table in ("linear_requests", "tree_requests"):
                (row_id,) = app.execute(
                    f"INSERT INTO {table} ({columns}) VALUES (50000, 1000, 40, 3) RETURNING id"
                ).fetchone()
                (count,) = app.execute(
                    f"SELECT count(*) FROM {table}_explanations WHERE id = %s", [row_id]
                ).fetchone()
                assert count == 4
                refused = (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectNotInPrerequisiteState)
                for statement in (  # the view is not updatable, whoever asks
                    f"INSERT INTO {table}_explanations (id, feature, contribution) VALUES (1, 'x', 1)",
                    f"UPDATE {table}_explanations SET contribution = 0",
                    f"DELETE FROM {table}_explanations",
                ):
                    with pytest.raises(refused):
                        app.execute(statement)
                for statement in (  # and its tables are the trigger's to write
                    f"INSERT INTO {table}_contributions (id, model, model_version, contributions) "
                    "VALUES (1, 'plain', 1, ARRAY[1.0])",
                    f"UPDATE {table}_contributions SET base = 0",
                    f"DELETE FROM {table}_explanation_features",
                    f"SELECT count(*) FROM {table}_contributions",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        app.execute(statement)
        with psycopg.connect(reader_url, autocommit=True) as reader:
            for table in ("linear_requests", "tree_requests"):
                rows = reader.execute(
                    f"SELECT feature FROM {table}_explanations WHERE id = 1 ORDER BY abs(contribution) DESC"
                ).fetchall()
                assert sorted(r[0] for r in rows) == sorted(NUMERIC)
                with pytest.raises(
                    (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectNotInPrerequisiteState)
                ):
                    reader.execute(f"INSERT INTO {table}_explanations (id, feature) VALUES (1, 'x')")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(f"INSERT INTO {table}_contributions (id) VALUES (1)")
            for function in ("explain_plain", "explain_trees"):  # SQL, PL/Python
                called = reader.execute(f"SELECT * FROM indb.{function}(50000, 1000, 40, 3)").fetchall()
                assert sorted(r[0] for r in called) == sorted(NUMERIC)
    public = db.sql(
        "SELECT p.oid::regprocedure::text AS f FROM pg_proc AS p, aclexplode(coalesce(p.proacl, "
        "acldefault('f', p.proowner))) AS a WHERE p.pronamespace = 'indb'::regnamespace AND a.grantee = 0"
    )
    assert public.empty, f"executable by PUBLIC: {list(public.f)}"


def test_a_family_without_an_exact_explainer_is_stored_as_approximate(db, loans, fresh_loans):
    """An SVM has neither linear nor tree explanations: the sampling explainer (seeded) runs
    next to onnxruntime and stores its per-row error estimate; still base + sum = raw output."""
    from sklearn.svm import SVC

    model = SVC().fit(loans[NUMERIC].head(300), loans.label.head(300))
    db.register_model("svm", model, sample=loans[NUMERIC].head(300))
    db.deploy("svm", table="svm_requests", runtime="onnx", explain=True)
    rows = fresh_loans[NUMERIC].head(5).reset_index(drop=True)
    insert(db, "svm_requests", rows)
    stored = db.sql(
        "SELECT id, count(*) AS k, count(error) AS errors, max(error) AS error, "
        "max(base) + sum(contribution) AS raw FROM svm_requests_explanations GROUP BY id ORDER BY id"
    )
    assert len(stored) == 5 and set(stored.k) == {4} and set(stored.errors) == {4}
    assert (stored.error >= 0).all()
    direct = db.explain("svm", rows)
    assert not direct.attrs["exact"]
    np.testing.assert_allclose(direct.groupby("row").output.first().to_numpy(), stored.raw, atol=1e-6)


def test_a_version_without_a_background_sample_is_refused_naming_it(db, logistic, loans):
    """Versions registered before samples were stored (migration 003) have no background:
    explain=True is refused with the family and the reason, and nothing is created."""
    db.register_model("plain", logistic, sample=loans[NUMERIC])
    db.sql("UPDATE indb.model_versions SET sample = NULL")
    with pytest.raises(DeploymentError, match=r"'plain' version 1 \(LogisticRegression\) cannot be"):
        db.deploy("plain", table="requests", explain=True)
    with pytest.raises(DeploymentError, match="background"):
        db.deploy("plain", table="requests", explain=True)
    assert db.backend.table_columns("requests") is None
    assert db.backend.table_columns("requests_explanations") is None


def test_three_classes_explain_the_predicted_class_of_each_row(db, loans, fresh_loans):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        loans[NUMERIC], loans.purpose
    )
    db.register_model("purpose", model, sample=loans[NUMERIC])
    db.deploy("purpose", table="purpose_requests", explain=True)
    rows = fresh_loans[NUMERIC].head(12).reset_index(drop=True)
    insert(db, "purpose_requests", rows)
    stored = db.sql(
        "SELECT id, feature, contribution, base FROM purpose_requests_explanations ORDER BY id, feature"
    )
    assert stored.id.nunique() == 12
    # the softmax input of the predicted class: the largest of the classes' decision values
    decision = model.decision_function(rows)
    raw = stored.groupby("id").apply(lambda g: g.base.iloc[0] + g.contribution.sum(), include_groups=False)
    np.testing.assert_allclose(raw.to_numpy(), decision.max(axis=1), atol=1e-6)


@pytest.mark.parametrize("family", ["linear", "trees"])
def test_explanations_of_inputs_joined_from_stored_features(db, family):
    """features_from: the stored feature values the prediction used are explained too, by the
    model's input names (the request row holds the entity key only)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from tests.test_feature_store import customer_rows

    rows = customer_rows()
    db.create_entity("customer", keys=["customer_id"])
    db.create_feature_set("finance", "customer", source=rows, event_time="ts")
    rows["channel"] = np.arange(len(rows)) % 3 * 1.0
    inputs = rows[["income", "debt", "channel"]]
    if family == "linear":
        model = LogisticRegression(max_iter=500).fit(inputs, rows.income > 50_000)
    else:
        model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(inputs, rows.income > 50_000)
    db.register_model("risk", model, sample=inputs)
    db.deploy("risk", table="risk_requests", runtime="onnx", features_from="finance", explain=True)
    db.sql("INSERT INTO risk_requests (customer_id, channel) VALUES (3, 1.0), (5, 2.0)")
    stored = db.sql(
        """SELECT e.id, e.feature, e.contribution, e.base, p.income, p.debt
           FROM risk_requests_explanations AS e JOIN risk_requests_predictions AS p ON p.id = e.id
           ORDER BY e.id, e.feature"""
    )
    assert sorted(stored.feature.unique()) == ["channel", "debt", "income"]
    for (_, group), channel in zip(stored.groupby("id"), [1.0, 2.0], strict=True):
        raw = group.base.iloc[0] + group.contribution.sum()
        x = pd.DataFrame([[group.income.iloc[0], group.debt.iloc[0], channel]], columns=inputs.columns)
        assert raw == pytest.approx(model.decision_function(x)[0], abs=1e-5)


PLAIN_CLIENT = """
import sys, duckdb
assert "indb" not in sys.modules
con = duckdb.connect(sys.argv[1])
try:
    con.execute("INSERT INTO loss_requests (income, debt, age, tenure) VALUES (52000, 9000, 35, 4.5)")
except duckdb.Error as e:
    print(e)
else:
    print("inserted", con.execute("SELECT count(*) FROM loss_requests_predictions").fetchone()[0])
"""


def test_plain_duckdb_client_is_told_how_to_insert_without_indb(tmp_path, boosted_regressor, loans):
    """Tree explanations run in indb's Python: a DuckDB client that never loaded indb cannot
    insert into the table, and the error says what to do."""
    import subprocess
    import sys

    import indb

    path = tmp_path / "plain.duckdb"
    with indb.connect(f"duckdb://{path}") as db:
        db.register_model("loss", boosted_regressor, sample=loans[NUMERIC])
        db.deploy("loss", table="loss_requests", runtime="sql", explain=True)  # compiled trees
    plain = subprocess.run([sys.executable, "-c", PLAIN_CLIENT, str(path)], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert "explained by indb in python: redeploy with explain=false to insert from clients" in plain.stdout
    with indb.connect(f"duckdb://{path}") as db:
        db.deploy("loss", table="loss_requests", runtime="sql", explain=False)
    plain = subprocess.run([sys.executable, "-c", PLAIN_CLIENT, str(path)], capture_output=True, text=True)
    assert plain.stdout.strip() == "inserted 1", plain.stdout + plain.stderr

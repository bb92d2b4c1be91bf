"""Models as files (issue 14.3): export -> import into an empty database, the checks that refuse a
changed folder, idempotent re-import, and ``indb verify`` through the real CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

import indb
from indb.errors import ModelError
from tests.conftest import NUMERIC
from tests.test_cli import indb_cli
from tests.test_monitoring_drift import DAY1, DAY2, load

ROWS = "SELECT income, debt, age, tenure FROM scored_rows ORDER BY id"


def _predictions(db, rows: pd.DataFrame, model: str = "loans") -> pd.DataFrame:
    db.write_table("scored_rows", rows.assign(id=range(len(rows)))[["id", *NUMERIC]], replace=True)
    return db.sql(
        f"SELECT predict_{model}(income, debt, age, tenure) AS label, "
        f"predict_proba_{model}(income, debt, age, tenure) AS proba FROM scored_rows ORDER BY id"
    )


def _empty_duckdb(tmp_path, name: str = "target"):
    return indb.connect(f"duckdb://{tmp_path}/{name}.duckdb")


def test_export_import_into_an_empty_database(db, tmp_path, logistic, loans, fresh_loans):
    source = db.register_model(
        "loans",
        logistic,
        sample=loans[NUMERIC],
        metrics={"auc": 0.91},
        tags={"team": "risk"},
        description="repaid or default",
    )
    db.set_alias("loans", "production", 1)
    folder = db.export_model("loans", tmp_path / "loans", version="production")
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL.md", "indb-model.json", "model.onnx"]
    document = json.loads((folder / "indb-model.json").read_text())
    assert (
        document["sha256"]
        == source.sha256
        == hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    )
    assert document["classes"] == ["default", "repaid"] and document["metrics"] == {"auc": 0.91}
    assert document["sample"]["outputs_from"] == "estimator" and len(document["sample"]["data"]) == 200
    assert "loans version 1" in (folder / "MODEL.md").read_text()

    with _empty_duckdb(tmp_path) as target:
        imported = target.import_model(folder)
        assert (imported.name, imported.version, imported.sha256) == ("loans", 1, source.sha256)
        assert imported.metrics == {"auc": 0.91} and imported.tags == {"team": "risk"}
        assert imported.recipe == source.recipe and imported.content_hash == source.content_hash
        got, want = _predictions(target, fresh_loans), _predictions(db, fresh_loans)
        assert got.label.tolist() == want.label.tolist()
        np.testing.assert_allclose(np.stack(got.proba), np.stack(want.proba), atol=1e-6)
        # the same folder again: nothing new, the existing version back
        again = target.import_model(folder)
        assert again.version == 1
        assert int(target.sql("SELECT count(*) AS n FROM indb.model_versions").n[0]) == 1
        # under another name it is a new model
        assert target.import_model(folder, name="loans_copy").version == 1
        assert target.sql("SELECT action FROM indb.audit_log WHERE action = 'import_model'").shape[0] == 2


def test_regressor_registered_as_onnx_round_trips(db, tmp_path, loans, fresh_loans):
    from sklearn.ensemble import RandomForestRegressor

    from indb.udfs import convert

    forest = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(
        loans[NUMERIC], loans.loss
    )
    onnx_bytes = convert.from_sklearn(forest, loans[NUMERIC]).SerializeToString()
    db.register_model("loss", onnx_bytes, sample=loans[NUMERIC])  # no estimator: onnxruntime's outputs
    folder = db.export_model("loss", tmp_path / "loss")
    assert json.loads((folder / "indb-model.json").read_text())["sample"]["outputs_from"] == "onnxruntime"
    with _empty_duckdb(tmp_path) as target:
        assert target.import_model(folder).sha256 == db.get_model("loss").sha256
        target.write_table("scored_rows", fresh_loans[NUMERIC], replace=True)
        db.write_table("scored_rows", fresh_loans[NUMERIC], replace=True)
        query = "SELECT predict_loss(income, debt, age, tenure) AS p FROM scored_rows"
        np.testing.assert_allclose(target.sql(query).p, db.sql(query).p, rtol=1e-6)


@pytest.fixture
def exported(tmp_path, logistic, loans):
    with _empty_duckdb(tmp_path, "source") as source:
        source.register_model("loans", logistic, sample=loans[NUMERIC], metrics={"auc": 0.91})
        return source.export_model("loans", tmp_path / "loans")


def _refused(tmp_path, folder, message: str) -> None:
    with _empty_duckdb(tmp_path) as target:
        with pytest.raises(ModelError, match=message):
            target.import_model(folder)
        assert target.sql("SELECT count(*) AS n FROM indb.model_versions").n[0] == 0
        assert target.sql("SELECT count(*) AS n FROM indb.models").n[0] == 0


def test_a_changed_onnx_file_is_refused(tmp_path, exported):
    data = bytearray((exported / "model.onnx").read_bytes())
    data[-1] ^= 1
    (exported / "model.onnx").write_bytes(bytes(data))
    _refused(tmp_path, exported, "has sha256 .* the file was changed; nothing was registered")


def test_changed_sample_outputs_are_refused(tmp_path, exported):
    path = exported / "indb-model.json"
    document = json.loads(path.read_text())
    columns = document["sample"]["columns"]
    label, p0 = columns.index("indb_expected"), columns.index("indb_expected_p0")
    for row in document["sample"]["data"][:5]:  # flip the recorded label and probabilities
        row[label] = "repaid" if row[label] == "default" else "default"
        row[p0] = 1 - row[p0]
    path.write_text(json.dumps(document))
    _refused(tmp_path, exported, "does not reproduce the outputs recorded .* nothing was registered")


def test_a_changed_hash_in_the_json_is_refused(tmp_path, exported):
    path = exported / "indb-model.json"
    document = json.loads(path.read_text())
    document["sha256"] = "0" * 64
    path.write_text(json.dumps(document))
    _refused(tmp_path, exported, "the file was changed")


def test_verify_model_metrics_and_drift(db):
    from tests.test_monitoring_drift import _model

    model, frame = _model()
    db.register_model("m", model, sample=frame, metrics={"auc": 0.9, "accuracy": 0.7})
    # nothing deployed: no drift data fails the drift limit unless it is accepted explicitly
    unwatched = db.verify_model("m", min_metrics={"auc": 0.8}, max_drift={"psi": 0.2})
    assert not unwatched.passed and unwatched.checks[1].status == "no_data"
    assert "no drift data" in unwatched.text() and "--allow-no-drift-data" in unwatched.text()
    accepted = db.verify_model(
        "m", min_metrics={"auc": 0.8}, max_drift={"psi": 0.2}, allow_no_drift_data=True
    )
    assert accepted.passed and accepted.checks[1].status == "no_data" and accepted.checks[1].ok
    db.deploy("m", table="requests")
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, 500), "y": rng.exponential(1, 500), "c": rng.choice(list("abc"), 500)}
    )
    load(db, reference, DAY1)
    load(db, reference.assign(x=reference.x + 3), DAY2)
    db.create_monitor("drift", "requests", reference=(DAY1, DAY2), features=["x", "y"])
    db.run_monitor("drift")
    report = db.verify_model(
        "m", 1, min_metrics={"auc": 0.8, "accuracy": 0.8, "f1": 0.5}, max_drift={"psi": 0.2}
    )
    by = {(c.kind, c.metric): c for c in report.checks}
    assert not report.passed
    assert by["metric", "auc"].status == "passed" and by["metric", "accuracy"].status == "failed"
    assert by["metric", "f1"].status == "missing"
    assert by["drift", "psi"].status == "failed" and "x on requests" in by["drift", "psi"].detail
    assert db.verify_model("m", max_drift={"psi": 1e9}).passed
    with pytest.raises(ModelError):
        db.verify_model("m", min_metrics={"auc": "high"})


def test_indb_verify_exit_codes_through_the_cli(tmp_path, logistic, loans):
    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        db.register_model("loans", logistic, sample=loans[NUMERIC], metrics={"auc": 0.91})
    passed = indb_cli("--db", url, "verify", "loans@1", "--min-metric", "auc=0.8", "--json", cwd=tmp_path)
    assert passed.returncode == 0, passed.stderr
    report = json.loads(passed.stdout)
    assert report["passed"] and report["checks"][0]["value"] == 0.91

    failed = indb_cli(
        "--db", url, "verify", "loans", "--min-metric", "auc=0.95", "--max-drift", "psi=0.2", cwd=tmp_path
    )
    assert failed.returncode == 1, failed.stderr
    assert "FAILED" in failed.stdout and "FAIL metric auc 0.91 (want >= 0.95)" in failed.stdout
    as_json = indb_cli("--db", url, "verify", "loans", "--min-metric", "auc=0.95", "--json", cwd=tmp_path)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["passed"] is False

    for bad in (("loans", "--min-metric", "auc"), ("nope",), ("loans@7",), ("loans", "--max-drift", "psi=x")):
        result = indb_cli("--db", url, "verify", *bad, cwd=tmp_path)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert "indb: error:" in result.stderr


def test_models_export_and_import_commands(tmp_path, logistic, loans):
    source, target = f"duckdb://{tmp_path}/a.duckdb", f"duckdb://{tmp_path}/b.duckdb"
    with indb.connect(source) as db:
        db.register_model("loans", logistic, sample=loans[NUMERIC])
        db.set_alias("loans", "staging", 1)
    out = indb_cli("--db", source, "models", "export", "loans@staging", str(tmp_path / "m"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "exported loans version 1" in out.stdout
    first = indb_cli("--db", target, "models", "import", str(tmp_path / "m"), cwd=tmp_path)
    assert first.returncode == 0 and "imported loans version 1" in first.stdout, first.stderr
    second = indb_cli("--db", target, "models", "import", str(tmp_path / "m"), cwd=tmp_path)
    assert second.returncode == 0 and "nothing to import" in second.stdout, second.stderr
    as_json = indb_cli("--db", target, "models", "import", str(tmp_path / "m"), "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout) == {
        "name": "loans",
        "version": 1,
        "sha256": json.loads((tmp_path / "m" / "indb-model.json").read_text())["sha256"],
        "created": False,
    }
    missing = indb_cli("--db", target, "models", "import", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 1 and "is not an exported indb model" in missing.stderr


def test_import_into_each_backend_from_duckdb(db, tmp_path, exported, logistic, fresh_loans):
    imported = db.import_model(exported)
    assert imported.sha256 == json.loads((exported / "indb-model.json").read_text())["sha256"]
    assert db.import_model(exported).version == imported.version == 1
    assert db.get_model("loans").recipe["estimator"]["estimator"] == "sklearn.pipeline.Pipeline"
    got = _predictions(db, fresh_loans)
    assert got.label.tolist() == list(logistic.predict(fresh_loans[NUMERIC]))
    np.testing.assert_allclose(np.stack(got.proba), logistic.predict_proba(fresh_loans[NUMERIC]), atol=1e-5)
    # the imported version deploys and scores inserts like a registered one
    db.deploy("loans", table="applications")
    db.write_table("incoming", fresh_loans[NUMERIC].head(20), replace=True)
    db.sql(
        "INSERT INTO applications (income, debt, age, tenure) SELECT income, debt, age, tenure FROM incoming"
    )
    scored = db.sql("SELECT prediction FROM applications_predictions ORDER BY id")
    assert scored.prediction.tolist() == list(logistic.predict(fresh_loans[NUMERIC].head(20)))


def test_verify_prefers_the_latest_training_run_metrics(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC], metrics={"auc": 0.91})
    for run_id, value in ((1, 0.5), (2, 0.75)):  # what a retraining run records for the version
        db.sql(
            "INSERT INTO indb.training_run_metrics (run_id, model, version, role, metric, value) "
            "VALUES ($run_id, 'loans', 1, 'champion', 'auc', $value)",
            {"run_id": run_id, "value": value},
        )
    report = db.verify_model("loans", min_metrics={"auc": 0.8})
    (check,) = report.checks
    assert not report.passed and check.value == 0.75 and "latest training run" in check.detail


def test_verify_without_drift_data_fails_unless_allowed_through_the_cli(tmp_path, logistic, loans):
    url = f"duckdb://{tmp_path}/cli.duckdb"
    with indb.connect(url) as db:
        db.register_model("loans", logistic, sample=loans[NUMERIC], metrics={"auc": 0.91})
    gate = ("--db", url, "verify", "loans", "--min-metric", "auc=0.8", "--max-drift", "psi=0.2")
    failed = indb_cli(*gate, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert "FAIL drift psi - (want <= 0.2) no_data (no drift data" in failed.stdout
    allowed = indb_cli(*gate, "--allow-no-drift-data", "--json", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    check = json.loads(allowed.stdout)["checks"][1]
    assert (check["status"], check["ok"], check["allowed"]) == ("no_data", True, True)


def test_an_import_without_its_training_set_says_so(db, tmp_path, logistic, loans):
    """The training set does not travel: an imported version whose export names one this
    database lacks says so in lineage, verify and reproduce instead of failing obscurely."""
    db.register_model("loans", logistic, sample=loans[NUMERIC], metrics={"auc": 0.91})
    folder = db.export_model("loans", tmp_path / "loans")
    path = folder / "indb-model.json"
    document = json.loads(path.read_text())
    # what an export of a retrained version carries (tests/test_governance_lineage.py makes one)
    document["lineage"] = {"training_set": "risk_train", "training_set_version": 3}
    path.write_text(json.dumps(document))
    with _empty_duckdb(tmp_path) as target:
        target.import_model(folder, name="risk")
        tree = target.lineage("risk", 1)
        (edge,) = [e for e in tree["upstream"] if e["relation"] == "imported_from"]
        assert (edge["name"], edge["version"]) == ("loans", 1)
        assert "training set risk_train@3 is not in this database" in edge["detail"]
        edges = target.sql(
            "SELECT from_name, to_name, to_version FROM indb.lineage WHERE relation = 'imported_from'"
        )
        assert edges.values.tolist() == [["risk", "loans", 1]]
        report = target.verify_model("risk", min_metrics={"auc": 0.8})
        assert report.passed and "risk_train@3 is not in this database" in report.text()
        with pytest.raises(ValueError, match="training set risk_train@3 is not in this database"):
            target.reproduce("risk", 1)
    db.import_model(folder, name="risk")  # the source's own backend (PostgreSQL too)
    detail = db.sql("SELECT detail FROM indb.lineage WHERE relation = 'imported_from'").detail
    assert list(detail) == [edge["detail"]]
    out = indb_cli("--db", f"duckdb://{tmp_path}/target.duckdb", "lineage", "risk@1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "imported_from -> model loans@1" in out.stdout and "not in this database" in out.stdout

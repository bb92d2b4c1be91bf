"""Model cards (issue 14.5) on both backends: a version with a training run, a deployment,
monitor results and a stage request gets every section with the catalog's numbers; hostile
catalog strings stay text; the free-text fields are stored, audited and (PostgreSQL) writable
by developers only, as real login roles; the HTML card loads in a real browser without errors,
its charts carry the catalog's values, and it prints."""

from __future__ import annotations

import re
from datetime import timedelta

import pandas as pd
import pytest

import indb
from indb.errors import NotFoundError, PermissionDeniedError
from indb.governance import card
from tests.test_cli import indb_cli
from tests.test_governance_stages import people
from tests.test_lifecycle_training import START, arrive, loop  # noqa: F401  (the loop fixture)

HOSTILE = "<script>alert(1)</script> | `x` & <b>bold</b>"
SECTIONS = [
    "overview",
    "owners",
    "documentation",
    "signature",
    "recipe",
    "training",
    "evaluation",
    "monitoring",
    "importance",
    "fairness",
    "humility",
    "governance",
]


@pytest.fixture
def documented(loop):  # noqa: F811
    """risk v3: retrained (a training run, on the leaderboard), production on risk_requests,
    monitored (drift per window, its accuracy on labeled rows), a humility rule, a stage
    request decided by an approver, documentation with hostile text."""
    db = loop
    db.create_retraining("risk", training_set="risk_train", holdout="20%", metric="auc")
    arrive(db, 1, 300)
    run = db.retrain("risk")
    assert run.status == "succeeded" and run.version == 3, run.error
    db.set_alias("risk", "production", 3)  # the deployment follows production
    arrive(db, 2, 200)
    db.create_monitor(
        "risk_watch",
        "risk_requests",
        reference=(START + timedelta(days=1), START + timedelta(days=2)),
        window="1 day",
        time_column="applied_at",
    )
    db.run_monitor("risk_watch")
    db.add_humility_rule("risk_requests", "unsure", "uncertain", low=0.45, high=0.55)
    db.set_description("risk", HOSTILE)
    # owners (PostgreSQL: existing roles) and comments, through indb.governance.collaboration
    names = (
        db.backend.role_names
        if db.backend.enforces_roles
        else {"approver": "ann", "developer": "credit_team"}
    )
    db.card_owners = sorted([names["approver"], names["developer"]])
    for owner in db.card_owners:
        db.add_owner("model", "risk", owner)
    db.comment("model", "risk", "watch income drift")
    db.comment("model", "risk", HOSTILE, version=3)
    db.comment("model", "risk", "about v2 only", version=2)
    db.document_model("risk", purpose="Rank loan applications by risk.", limitations=HOSTILE)
    db.document_model("risk", 3, intended_use="Pre-screening only;\nhumans decide.")
    with people(db, dev="developer", ann="approver") as p:
        dev, ann = p["dev"], p["ann"]
        request = dev.db.request_promotion("risk", 3, "staging", "better holdout auc", as_user=dev.name)
        assert ann.db.approve(request, "checked", as_user=ann.name) == "done"
    db.card_run = run
    return db


def _section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([a-z_]+)">', html)


def test_every_section_with_the_catalogs_numbers(documented):
    db = documented
    info = db._call(card.gather, "risk", 3)
    by_id = {s.id: s for s in info["sections"]}
    assert list(by_id) == SECTIONS
    html = db.model_card("risk", 3)
    assert _section_ids(html) == SECTIONS

    # documentation: the model's row and the version's, merged
    assert info["documentation"]["purpose"] == "Rank loan applications by risk."
    assert info["documentation"]["intended_use"] == "Pre-screening only;\nhumans decide."
    assert "Pre-screening only;\nhumans decide." in html
    assert "Not documented" in html  # ethical considerations were never written

    # owners and the comments on the model or on version 3 (not those on version 2)
    assert info["owners"].owner.tolist() == db.card_owners
    assert info["comments"].body.tolist() == ["watch income drift", HOSTILE]
    assert f"<td>{db.card_owners[0]}</td>" in html and "about v2 only" not in html

    # signature and recipe
    assert "<td>income</td><td>DOUBLE</td>" in html.replace("\n", "")
    assert "bad, good" in html

    # training: the run and the training set version it used, with the stored statistics
    run = db.card_run
    assert info["training_run"]["id"] == run.id
    assert info["training_set"] == ("risk_train", 2)
    stats = db.sql(
        "SELECT feature, mean, stddev FROM indb.feature_statistics "
        "WHERE scope = 'training_set' AND name = 'risk_train' AND version = 2 ORDER BY feature"
    )
    assert not stats.empty
    for row in stats.itertuples():
        assert f"<td>{card.fmt(row.mean)}</td>" in html

    # holdout metrics and leaderboard position
    board = db.leaderboard("risk")
    mine = board[board.version == 3].set_index("metric")
    assert not mine.empty
    for metric, row in mine.iterrows():
        ranked = int((board.metric == metric).sum())
        assert (
            f"<td>{metric}</td><td>{card.fmt(row.value)}</td><td>{int(row['rank'])} of {ranked}</td>" in html
        )
    metrics = db.sql(
        "SELECT metric, value FROM indb.training_run_metrics WHERE version = 3 AND run_id = $r", {"r": run.id}
    )
    assert (metrics.value.notna()).all()

    # drift and accuracy: every chart point equals a monitor result
    results = db.monitor_results("risk_watch")
    drift = results[
        results.model_version.isna() & (results.metric == "wasserstein") & (results.feature == "income")
    ]
    accuracy = results[(results.model_version == 3) & (results.metric == "accuracy")]
    assert len(drift) >= 2 and len(accuracy) >= 1
    charts = {c["title"]: c for c in info["charts"]}
    assert charts["risk_watch: income wasserstein"]["values"] == pytest.approx(drift.value.tolist(), abs=0)
    assert charts["risk_watch: accuracy of version 3"]["values"] == pytest.approx(
        accuracy.value.tolist(), abs=0
    )
    for value in accuracy.value:
        assert f"<title>{value:.4g}</title>" in html

    # humility, stage, approvals and the audit trail
    assert "unsure" in html and "uncertain" in html
    assert info["stage"] == "staging"
    requests = db.stage_requests("risk")
    assert requests.status.tolist() == ["done"]
    assert "better holdout auc" in html and "checked" in html
    trail = info["audit"]
    assert {"register_model", "document_model", "request promotion", "change stage"} <= set(trail.action)
    assert f"<td>{int(trail.id.iloc[-1])}</td>" in html


def _result(db, window, feature, metric, value, category=None, threshold=None):
    """One indb.monitor_results row shaped as indb.monitoring.importance / fairness write them."""
    db.sql(
        "INSERT INTO indb.monitor_results (run_id, monitor, window_start, window_end, model_version, "
        "feature, metric, category, value, threshold, drifted, n_reference, n_current) VALUES "
        "(999, 'risk_watch', $start, $end, 3, $feature, $metric, $category, $value, $threshold, "
        "$drifted, 300, 160)",
        {
            "start": window,
            "end": window + timedelta(days=1),
            "feature": feature,
            "metric": metric,
            "category": category,
            "value": value,
            "threshold": threshold,
            "drifted": None if threshold is None else value < threshold,
        },
    )


def test_importance_and_fairness_when_monitors_computed_them(documented):
    db = documented
    windows = [START + timedelta(days=15), START + timedelta(days=16)]
    for window, share, ndcg, ratio in zip(windows, (0.62, 0.71), (1.0, 0.85), (0.9, 0.7), strict=True):
        for feature, part, rank in (("income", share, 1), ("debt", 1 - share, 2)):
            _result(db, window, feature, "importance", part * 2.5)
            _result(db, window, feature, "importance_share", part)
            _result(db, window, feature, "importance_rank", rank)
        _result(db, window, "*", "attribution_ndcg", ndcg, threshold=0.9)
        _result(db, window, "age_band", "demographic_parity_ratio", ratio, threshold=0.8)
        _result(db, window, "age_band", "demographic_parity_difference", 1 - ratio)
        for group, rate in (("young", 0.5 * ratio), ("old", 0.5)):
            _result(db, window, "age_band", "group_selection_rate", rate, category=group)
            _result(db, window, "age_band", "group_rows", 80, category=group)
    info = db._call(card.gather, "risk", 3)
    by_id = {s.id: s for s in info["sections"]}
    importance, fairness = by_id["importance"], by_id["fairness"]
    (latest,) = [b for b in importance.blocks if b.kind == "table"]
    assert latest.columns == ["feature", "importance", "importance_share", "importance_rank"]
    assert latest.rows == [
        ["income", card.fmt(0.71 * 2.5), card.fmt(0.71), card.fmt(1.0)],
        ["debt", card.fmt((1 - 0.71) * 2.5), card.fmt(1 - 0.71), card.fmt(2.0)],
    ]
    charts = {c["title"]: c["values"] for c in info["charts"]}
    assert charts["risk_watch: importance share per window"] == pytest.approx(
        [1 - 0.62, 1 - 0.71, 0.62, 0.71]
    )
    assert charts["risk_watch: attribution drift (nDCG)"] == [1.0, 0.85]
    assert charts["risk_watch: age_band demographic parity ratio"] == [0.9, 0.7]
    summary, groups = [b for b in fairness.blocks if b.kind == "table"]
    assert summary.rows == [
        ["demographic_parity_difference", card.fmt(1 - 0.7), "—", "—"],
        ["demographic_parity_ratio", card.fmt(0.7), card.fmt(0.8), "yes"],
    ]
    assert groups.columns == ["group", "group_rows", "group_selection_rate"]
    assert groups.rows == [["old", card.fmt(80.0), card.fmt(0.5)], ["young", card.fmt(80.0), card.fmt(0.35)]]
    html = db.model_card("risk", 3)
    assert _section_ids(html) == SECTIONS
    assert "<title>0.7</title>" in html and "threshold 0.8" in html
    md = db.model_card("risk", 3, format="md")
    assert "| demographic_parity_ratio | 0.7 | 0.8 | yes | " in md


def test_sections_without_data_say_so(db, logistic, loans):
    from tests.conftest import NUMERIC

    db.register_model("plain", logistic, sample=loans[NUMERIC])
    info = db._call(card.gather, "plain")
    empty = [s.id for s in info["sections"] if not s.blocks]
    assert empty == ["monitoring", "importance", "fairness", "humility"]
    html = db.model_card("plain")
    assert _section_ids(html) == SECTIONS
    for sentence in (
        "No training run recorded",
        "No training set recorded",
        "No training run evaluated this version",
        "Never deployed.",
        "No humility rules",
        "No stage requests.",
        "No monitor computes feature importance for this version",
        "No monitor computes group fairness for this version",
        "No owners recorded.",
        "No comments on the model or this version.",
    ):
        assert sentence in html
    md = db.model_card("plain", format="md")
    assert "Never deployed." in md and "## Holdout metrics and leaderboard" in md


def test_hostile_catalog_strings_stay_text_and_markdown_has_the_same_sections(documented):
    db = documented
    html = db.model_card("risk", 3)
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = db.model_card("risk", 3, format="md")
    assert "<script>" not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\`x\\` &amp; &lt;b&gt;bold&lt;/b&gt;" in md
    # every Markdown table row keeps its column count: a | in a value cannot split a cell
    for table in re.findall(r"(?:^\|.*\|\s*$\n?)+", md, flags=re.MULTILINE):
        lines = [line for line in table.splitlines() if line.strip()]
        widths = {len(re.split(r"(?<!\\)\|", line.strip())) for line in lines}
        assert len(widths) == 1, table
    titles = [s.title for s in db._call(card.gather, "risk", 3)["sections"]]
    assert re.findall(r"^## (.+)$", md, flags=re.MULTILINE) == titles
    assert "<svg" not in md  # charts as value tables
    results = db.monitor_results("risk_watch")
    for value in results[(results.model_version == 3) & (results.metric == "accuracy")].value:
        assert f"| {card.fmt(value)} |" in md


def test_unknown_model_version_and_bad_input(db, logistic, loans):
    from tests.conftest import NUMERIC

    db.register_model("risk", logistic, sample=loans[NUMERIC])
    with pytest.raises(NotFoundError, match="risk"):
        db.model_card("risk", 9)
    with pytest.raises(NotFoundError, match="nope"):
        db.model_card("nope")
    with pytest.raises(card.CardError, match="html or md"):
        db.model_card("risk", 1, format="pdf")
    before = db.sql("SELECT count(*) AS n FROM indb.audit_log").n[0]
    with pytest.raises(NotFoundError):
        db.document_model("risk", 9, purpose="x")
    with pytest.raises(NotFoundError):
        db.document_model("nope", purpose="x")
    with pytest.raises(card.CardError, match="nothing to document"):
        db.document_model("risk")
    with pytest.raises(card.CardError, match="must be text"):
        db.document_model("risk", purpose=42)
    assert db.sql("SELECT count(*) AS n FROM indb.audit_log").n[0] == before
    assert db.sql("SELECT count(*) AS n FROM indb.model_documentation").n[0] == 0


def test_documentation_keeps_clears_and_audits(db, logistic, loans):
    from tests.conftest import NUMERIC

    db.register_model("m", logistic, sample=loans[NUMERIC])
    first = db.document_model("m", purpose="score loans", limitations="US only")
    assert (first["purpose"], first["limitations"]) == ("score loans", "US only")
    second = db.document_model("m", limitations="")
    assert (second["purpose"], second["limitations"]) == ("score loans", None)
    rows = db.sql("SELECT version, purpose, limitations FROM indb.model_documentation WHERE model = 'm'")
    assert len(rows) == 1 and pd.isna(rows.version[0])
    audit = db.sql(
        "SELECT object, CAST(details AS VARCHAR) AS d FROM indb.audit_log WHERE action = 'document_model'"
    )
    assert audit.object.tolist() == ["m", "m"]
    assert "score loans" in audit.d[0]


pg_only = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


@pg_only
def test_developers_document_readers_may_not(db, logistic, loans):
    from tests.conftest import NUMERIC
    from tests.test_trust_postgres import login_role

    db.register_model("m", logistic, sample=loans[NUMERIC])
    developer, reader = db.backend.role_names["developer"], db.backend.role_names["reader"]
    with login_role(db, developer) as (dev_name, dev_url), login_role(db, reader) as (_, reader_url):
        with indb.connect(dev_url) as dev:
            dev.document_model("m", purpose="written by a developer")
            assert "written by a developer" in dev.model_card("m")
            # the function is the only way in: no direct writes, so updated_by cannot be forged
            with pytest.raises(PermissionDeniedError):
                dev.sql("UPDATE indb.model_documentation SET updated_by = 'someone else'")
        with indb.connect(reader_url) as reader:
            assert "written by a developer" in reader.model_card("m")  # readers read the card
            with pytest.raises(PermissionDeniedError):
                reader.document_model("m", purpose="written by a reader")
            with pytest.raises(PermissionDeniedError):
                reader.sql(
                    "INSERT INTO indb.model_documentation (model, purpose, updated_by) VALUES ('m', 'x', 'y')"
                )
    rows = db.sql("SELECT purpose, updated_by FROM indb.model_documentation")
    assert rows.values.tolist() == [["written by a developer", dev_name]]
    actors = db.sql("SELECT actor FROM indb.audit_log WHERE action = 'document_model'").actor.tolist()
    assert actors == [dev_name]


def test_cli_writes_html_and_markdown(documented, tmp_path, capsys, monkeypatch):
    from indb.cli import main

    db = documented
    url = db.url
    db.close()  # DuckDB: one process at a time on the file
    done = indb_cli("models", "doc", "--db", url, "risk@3", "--out", "card.html", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _section_ids((tmp_path / "card.html").read_text()) == SECTIONS
    # the rest in this process (the same argument parsing and exit codes, without a start-up)
    monkeypatch.chdir(tmp_path)
    assert main(["models", "doc", "--db", url, "risk@production", "--out", "card.md"]) == 0
    assert (tmp_path / "card.md").read_text().startswith("# Model card: risk version 3")
    assert (
        main(["models", "doc", "--db", url, "risk", "--ethical-considerations", "no protected attributes"])
        == 0
    )
    assert "documented risk: ethical_considerations" in capsys.readouterr().out
    assert main(["models", "doc", "--db", url, "risk@3", "--out", "card.pdf"]) == 1
    assert ".html or .md" in capsys.readouterr().err
    assert main(["models", "doc", "--db", url, "risk@3", "--out", "card.txt", "--format", "md"]) == 0
    assert (tmp_path / "card.txt").read_text().startswith("# Model card")
    assert main(["models", "doc", "--db", url, "nope", "--out", "x.html"]) == 1
    assert "nope" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
    with indb.connect(url) as again:
        assert "no protected attributes" in again.model_card("risk", 3)


duckdb_only = pytest.mark.parametrize("db", ["duckdb"], indirect=True)

CHART_TITLES = """svg => [...svg.querySelectorAll("circle > title")].map(t => t.textContent)"""


@duckdb_only
def test_the_html_card_in_a_real_browser(documented, page, tmp_path):
    from tests.browser_fixtures import save_screenshot

    db = documented
    info = db._call(card.gather, "risk", 3)
    path = tmp_path / "card.html"
    path.write_text(db.model_card("risk", 3), encoding="utf-8")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri())
    assert page.problems == []
    assert [url for url in requested if not url.startswith("data:")] == [path.as_uri()]  # no network
    assert page.title() == "Model card: risk version 3"
    for section in SECTIONS:
        assert page.locator(f"section#{section}").is_visible(), section
    # the hostile description is text on the page, not a script or markup
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.evaluate("[...document.querySelectorAll('b')].map(b => b.textContent)") == ["staging"]
    assert "<script>alert(1)</script>" in page.locator("section#overview").inner_text()

    # every chart is an inline SVG whose points carry the catalog's values
    svgs = page.locator("figure.chart svg")
    assert svgs.count() == len(info["charts"]) >= 4
    results = db.monitor_results("risk_watch")
    for i, chart in enumerate(info["charts"]):
        shown = svgs.nth(i).evaluate(CHART_TITLES)
        assert shown == [f"{v:.4g}" for v in chart["values"]], chart["title"]
    accuracy = results[(results.model_version == 3) & (results.metric == "accuracy")].value
    (drawn,) = [c for c in info["charts"] if c["title"] == "risk_watch: accuracy of version 3"]
    assert drawn["values"] == accuracy.tolist()
    assert page.locator("figure.chart details table").first.is_hidden()  # folded on screen
    save_screenshot(page, "model_card")

    # printed: every section still shows, charts fit the page, one section per page
    page.emulate_media(media="print")
    for section in SECTIONS:
        assert page.locator(f"section#{section}").is_visible(), section
    assert page.locator("nav").is_hidden()
    breaks = page.evaluate(
        "[...document.querySelectorAll('section')].map(s => getComputedStyle(s).breakBefore)"
    )
    assert breaks == ["auto"] + ["page"] * (len(SECTIONS) - 1)
    # the values under each chart print too (on screen they fold away under "values")
    assert page.locator("figure.chart details table").first.is_visible()
    avoid = page.evaluate(
        "[...document.querySelectorAll('figure')].map(f => getComputedStyle(f).breakInside)"
    )
    assert set(avoid) == {"avoid"}
    pdf = page.pdf(format="A4")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages >= len(SECTIONS)
    save_screenshot(page, "model_card_print")
    assert page.problems == []

"""``indb demo``: the whole loop on synthetic loan applications, in plain SQL where users would.

Train on 30 days of history, register and deploy the model, then stream 60 more days of
applications into the request table in daily batches (each INSERT is scored by the trigger) and
record each outcome 14 days after its application. From then on the database closes the loop by
itself, through jobs: a weekly drift monitor raises alerts when a downturn shifts the
applications; an alert starts the retraining job, which rebuilds the training set (history plus
the outcomes that arrived), refits the champion's recipe and adds the new version as a shadow
challenger; every insert is then scored by both; a daily job compares them on the outcomes as
they arrive and promotes the challenger once it is better. On DuckDB the jobs run through indb's
scheduler on a simulated clock (one pass per streamed day, so 60 days take seconds); on
PostgreSQL the same jobs run inside the server, called here once a day as pg_cron would.

The request table's ``id`` and ``created_at`` are the server's (the time of the replay), so
the demo keeps each application's own number and date in columns of its own
(``application_id``, ``applied_at``): it creates the table with them before deploying, the
deploy adopts it, and the weeks are counted by ``applied_at``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

import indb
from indb.progress import Progress

TABLE = "loan_applications"
FEATURES = [
    "income",
    "debt",
    "age",
    "employment_years",
    "credit_lines",
    "purpose",
    "home_ownership",
]
NUMERIC = ["income", "debt", "age", "employment_years", "credit_lines"]
CATEGORICAL = ["purpose", "home_ownership"]
DAYS, TRAIN_DAYS, LABEL_DELAY_DAYS = 90, 30, 14
START = pd.Timestamp("2026-01-05")


def applications(rows: int, seed: int) -> pd.DataFrame:
    """Loan applications over DAYS days; a downturn from day 35 to 45 raises debt and defaults."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.uniform(0, DAYS, rows))
    downturn = np.clip((day - 35) / 10, 0, 1)
    frame = pd.DataFrame(
        {
            "id": np.arange(1, rows + 1, dtype=np.int64),
            "applied_at": START + pd.to_timedelta(day, unit="D"),
            "income": rng.lognormal(10.8, 0.45, rows).round(2),
            "debt": (rng.gamma(2.0, 7_000, rows) * (1 + 0.5 * downturn)).round(2),
            "age": rng.integers(19, 75, rows).astype(np.int64),
            "employment_years": rng.exponential(6, rows).round(1),
            "credit_lines": rng.poisson(4, rows).astype(np.int64),
            "purpose": rng.choice(
                ["car", "home", "education", "business", "medical"],
                rows,
                p=[0.3, 0.25, 0.15, 0.2, 0.1],
            ),
            "home_ownership": rng.choice(["rent", "own", "mortgage"], rows, p=[0.45, 0.2, 0.35]),
        }
    )
    risk = (
        2.2 * frame.debt / frame.income
        - 0.05 * frame.employment_years
        + 0.08 * (frame.credit_lines - 4)
        + 0.5 * (frame.purpose == "business") * (1 + 2 * downturn)
        - 0.3 * (frame.home_ownership == "own")
        - 0.01 * (frame.age - 40)
        + 0.6 * downturn
        + rng.normal(0, 0.35, rows)
    )
    frame["outcome"] = np.where(risk > 0.75, "default", "repaid")
    return frame


def train(history: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cut = int(len(history) * 0.8)
    fit, holdout = history.iloc[:cut], history.iloc[cut:]
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("numeric", "passthrough", NUMERIC),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("model", GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)),
        ]
    )
    pipeline.fit(fit[FEATURES], fit["outcome"])
    proba = pipeline.predict_proba(holdout[FEATURES])[:, list(pipeline.classes_).index("default")]
    metrics = {
        "holdout_accuracy": round(
            float(accuracy_score(holdout["outcome"], pipeline.predict(holdout[FEATURES]))), 4
        ),
        "holdout_auc": round(float(roc_auc_score(holdout["outcome"] == "default", proba)), 4),
        "training_rows": len(fit),
    }
    pipeline.fit(history[FEATURES], history["outcome"])
    return pipeline, metrics


JOBS = ("loans_drift", "loans_challengers", "loans_retention")


def _drop_previous_run(db: indb.Database) -> None:
    if not db.sql("SELECT 1 FROM indb.retraining_policies WHERE model = 'loans'").empty:
        db.drop_retraining("loans")
    for job in JOBS:
        if not db.sql("SELECT 1 FROM indb.jobs WHERE name = $n", {"n": job}).empty:
            db.unschedule(job)
    if not db.sql("SELECT 1 FROM indb.monitors WHERE name = $n", {"n": "loans"}).empty:
        db.drop_monitor("loans")
    if not db.sql("SELECT 1 FROM indb.deployments WHERE table_name = $t", {"t": TABLE}).empty:
        db.undeploy(TABLE, drop_tables=True)
        print(f"  removed the tables of an earlier demo run ({TABLE}*)")


def _stream_day(db: indb.Database, day: int) -> int:
    """Insert one day of applications with plain SQL and the labels that became known."""
    start = START + pd.Timedelta(days=day)
    end = start + pd.Timedelta(days=1)
    delay = pd.Timedelta(days=LABEL_DELAY_DAYS)
    columns = ", ".join(FEATURES)
    db.sql(
        f"INSERT INTO {TABLE} (application_id, applied_at, {columns}) "
        f"SELECT id, applied_at, {columns} FROM demo_incoming "
        "WHERE applied_at >= $start AND applied_at < $end ORDER BY id",
        {"start": start, "end": end},
    )
    # outcomes are recorded against the server's row id of each application
    db.sql(
        f"INSERT INTO {TABLE}_ground_truth (id, label, observed_at) "
        "SELECT r.id, i.outcome, i.applied_at + $delay * INTERVAL '1 day' "
        f"FROM demo_incoming AS i JOIN {TABLE} AS r ON r.application_id = i.id "
        "WHERE i.applied_at >= $start AND i.applied_at < $end",
        {"start": start - delay, "end": end - delay, "delay": LABEL_DELAY_DAYS},
    )
    ((count,),) = db.backend.rows(
        "SELECT count(*) FROM demo_incoming WHERE applied_at >= $start AND applied_at < $end",
        {"start": start, "end": end},
    )
    return int(count)


def _training_set(db: indb.Database) -> None:
    """The training set retraining rebuilds: the history plus every application whose outcome
    has arrived (requests joined with their labels), by application time."""
    columns = ", ".join(FEATURES)
    requested = ", ".join(f"r.{c}" for c in FEATURES)
    db.training_set(
        f"SELECT id, applied_at AS event_time, {columns}, outcome AS label FROM loan_history "
        f"UNION ALL SELECT r.application_id, r.applied_at, {requested}, g.label "
        f"FROM {TABLE} AS r JOIN {TABLE}_ground_truth AS g ON g.id = r.id",
        [],
        label="label",
        materialize=True,
        name="loans_labeled",
        description="loan history and the outcomes of scored applications",
    )


def _schedule_jobs(db: indb.Database, rows: int):
    """The monitor, challenger evaluation and retention as jobs, and the retraining policy
    (its job runs on the monitor's alerts); on DuckDB also a scheduler whose clock starts on the
    first streamed day (None on PostgreSQL, where the server runs jobs)."""
    from indb.jobs import api
    from indb.jobs.clock import ManualClock
    from indb.jobs.scheduler import Scheduler

    specs = [
        api.JobSpec(
            "loans_drift",
            "0 6 * * 1",
            "run_monitor",
            {"monitor": "loans"},
            comment="drift and accuracy of the loans deployment, Mondays 06:00 UTC",
        ),
        api.JobSpec(
            "loans_challengers",
            "0 7 * * *",
            "evaluate_challengers",
            {"deployment": TABLE},
            comment="compare challengers with the champion on the outcomes so far; promote a better one",
        ),
        api.JobSpec(
            "loans_retention",
            "@weekly",
            "retain",
            {"deployment": TABLE, "days": 365},
            comment="keep a year of requests, predictions and outcomes",
        ),
    ]
    clock = None if db.backend.supports_procedures else ManualClock(START + pd.Timedelta(days=TRAIN_DAYS))
    for spec in specs:
        api.schedule(db.backend, spec, **({} if clock is None else {"clock": clock}))
    db.create_retraining(
        "loans",
        training_set="loans_labeled",
        holdout="14 days",
        metric="roc_auc",
        schedule="0 8 * * 1",
        on_alert={"monitor": "loans"},
        min_new_labels=max(50, rows // 30),  # 1,000 labels for the default 30,000 rows
        promote="auto",
        min_labels=max(30, rows // 60),
        deployment=TABLE,
    )
    if clock is None:
        return None
    # the policy's job was scheduled on the system clock: its next run follows the simulated one
    api.enable(db.backend, "retrain_loans", True, clock=clock)
    return Scheduler(db.backend, clock=clock)


def _run_jobs(db: indb.Database, scheduler, day: int) -> int:
    """The jobs due by the end of ``day``: the scheduler's own pass on the simulated clock; on
    PostgreSQL each job called as pg_cron would (the monitor and retraining on Mondays)."""
    if scheduler is not None:
        scheduler.clock.set(START + pd.Timedelta(days=day + 1))
        return len(scheduler.tick())
    monday = (START + pd.Timedelta(days=day)).dayofweek == 0
    names = ["loans_drift", "retrain_loans", "loans_retention"] if monday else []
    for name in [*names, "loans_challengers"]:
        db.run_job(name)
    return len(names) + 1


JOB_HISTORY = """
SELECT job, status, count(*) AS runs, min(scheduled_for) AS first_due, max(scheduled_for) AS last_due
FROM indb.job_runs
WHERE job IN ('loans_drift', 'retrain_loans', 'loans_challengers', 'loans_retention')
GROUP BY 1, 2
ORDER BY 1, 2
"""

PROMOTIONS = """
SELECT version, switched_at, reason FROM indb.deployment_history
WHERE deployment = $table ORDER BY id
"""


ACCURACY_BY_WEEK = f"""
SELECT CAST(date_trunc('week', applied_at) AS DATE) AS week,
       model_version,
       count(*) AS scored,
       count(label) AS labeled,
       round(CAST(avg(CASE WHEN label IS NULL THEN NULL
                           WHEN prediction = label THEN 1.0 ELSE 0.0 END) AS NUMERIC), 3) AS accuracy,
       round(CAST(avg(probability_default) AS NUMERIC), 3) AS mean_p_default
FROM {TABLE}_scored
GROUP BY 1, 2
ORDER BY 1, 2
"""


def run_demo(url: str | None = None, rows: int = 30_000, seed: int = 7) -> None:
    started = time.perf_counter()
    db = indb.connect(url)
    print(f"indb demo: {db.url}\n")
    _drop_previous_run(db)

    data = applications(rows, seed)
    history = data[data.applied_at < START + pd.Timedelta(days=TRAIN_DAYS)]
    db.write_table("loan_history", history, replace=True)
    db.write_table("demo_incoming", data[len(history) :], replace=True)
    print(
        f"1. generated {rows:,} loan applications over {DAYS} days; "
        f"{len(history):,} with known outcomes are in table loan_history"
    )

    pipeline, metrics = train(db.sql("SELECT * FROM loan_history ORDER BY id"))
    v1 = db.register_model(
        "loans",
        pipeline,
        sample=history[FEATURES].head(500),
        metrics=metrics,
        tags={"trained_on": f"days 0-{TRAIN_DAYS - 1}"},
        description="Default risk of a loan application",
    )
    db.set_alias("loans", "production", v1.version)
    print(
        f"2. trained {type(pipeline[-1]).__name__}, registered loans version {v1.version} "
        f"(holdout accuracy {metrics['holdout_accuracy']}, AUC {metrics['holdout_auc']}), "
        "aliased production"
    )

    # the request table, with each application's own number and date: the deploy adopts it
    requests = data.iloc[:0][["id", "applied_at", *FEATURES]].rename(columns={"id": "application_id"})
    db.write_table(TABLE, requests, replace=True)
    db.deploy("loans", table=TABLE)
    print(f"3. deployed: every INSERT INTO {TABLE} is scored into {TABLE}_predictions")
    db.create_monitor(
        "loans",
        TABLE,
        reference="SELECT " + ", ".join(FEATURES) + " FROM loan_history",
        features=FEATURES,
        window="7 days",
        time_column="applied_at",
    )
    _training_set(db)
    scheduler = _schedule_jobs(db, rows)
    print(
        "   the database closes the loop itself: monitor loans (weekly windows of applied_at) and\n"
        "   jobs loans_drift (Mondays 06:00: run_monitor), retrain_loans (Mondays 08:00 and on the\n"
        "   monitor's alerts: rebuild training set loans_labeled, refit, shadow a better version),\n"
        "   loans_challengers\n"
        "   (daily: compare on arrived outcomes, promote a better challenger), loans_retention\n"
    )

    with Progress(DAYS - TRAIN_DAYS, "4. streaming applications", unit="days") as bar:
        for day in range(TRAIN_DAYS, DAYS):
            rows = _stream_day(db, day)
            bar.advance(1, note=f"{rows:,} rows, {_run_jobs(db, scheduler, day)} job run(s)")
    print()
    versions = " and ".join(
        str(v)
        for (v,) in db.backend.rows(
            f"SELECT DISTINCT model_version FROM {TABLE}_predictions WHERE served ORDER BY 1"
        )
    )

    print(
        "5. accuracy by week, over applications whose outcome has arrived "
        f"({LABEL_DELAY_DAYS} days after applying):"
    )
    from indb.cli import _show

    _show(db.sql(ACCURACY_BY_WEEK))
    how = "the scheduler, on a simulated clock" if scheduler is not None else "CALL indb.run_job"
    print(f"\n   job runs ({how}; indb.job_runs, indb.job_status):")
    _show(db.sql(JOB_HISTORY))
    alerts = db.sql("SELECT count(*) AS n FROM indb.alerts WHERE monitor = 'loans'").iloc[0].n
    print(f"   drift alerts raised by the monitor job: {alerts} (indb monitor alerts loans)")
    print("\n   retraining runs (indb.training_runs) and the leaderboard on ROC AUC (indb.leaderboard):")
    _show(
        db.sql(
            "SELECT id, status, version, parent_version, training_set_version, rows, triggered_by "
            "FROM indb.training_runs WHERE model = 'loans' ORDER BY id"
        )
    )
    _show(db.leaderboard("loans", "roc_auc"))
    print("\n   the last comparison of challengers with the champion (indb.challenger_comparison):")
    _show(
        db.sql(
            "SELECT window_name, version, role, mode, metric, labeled_rows, round(value, 4) AS value, "
            "round(difference, 4) AS difference, round(ci_low, 4) AS ci_low, "
            "round(ci_high, 4) AS ci_high, verdict FROM indb.challenger_comparison "
            "WHERE deployment = $t AND metric IN ('accuracy', 'roc_auc') "
            "ORDER BY window_name, metric, version",
            {"t": TABLE},
        )
    )
    print("\n   which version served, from when (indb.deployment_history):")
    _show(db.sql(PROMOTIONS, {"table": TABLE}))
    totals = db.sql(
        f"SELECT (SELECT count(*) FROM {TABLE}) AS requests, "
        f"(SELECT count(*) FROM {TABLE}_predictions) AS predictions, "
        f"(SELECT count(*) FROM {TABLE}_ground_truth) AS labels"
    ).iloc[0]
    print(f"""
6. what is where ({db.url}), in {time.perf_counter() - started:.1f}s:
   indb.models, indb.model_versions   model loans; this run scored with versions {versions}
   {TABLE:<33}  requests ({totals.requests:,} rows), the table applications insert into
   {TABLE + "_predictions":<33}  predictions ({totals.predictions:,} rows) with version and runtime
   {TABLE + "_ground_truth":<33}  outcomes as they arrive ({totals.labels:,} rows)
   {TABLE + "_scored":<33}  the view joining all three

   try:  indb sql "SELECT predict_loans(52000, 9000, 35, 4.5, 3, 'car', 'rent')"
         indb sql "SELECT model_version, count(*) FROM {TABLE}_scored GROUP BY 1"
         indb models show loans""")
    if url is not None:
        print(f"   (add --db {url} to each command)")
    db.close()

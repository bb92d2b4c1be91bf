"""Version switches under concurrent writers on PostgreSQL, checked row by row.

``run(url, ...)`` registers two versions of one model, deploys version 1 to a fresh request
table, starts ``writers`` psycopg threads that insert ``batch`` rows per autocommit
statement as fast as they can, and switches the deployment between the two versions every
``switch_every`` seconds from another connection, for ``seconds`` seconds. Then it checks:

* no writer or switch failed (no deadlock, no error of any kind);
* every switch (the whole ``db.deploy`` call) took less than ``max_switch`` seconds plus the
  longest insert statement (the one it may have had to wait for);
* every request row has exactly one prediction and every prediction a request row;
* each statement's rows carry one version, one that was deployed at some moment between the
  statement's start and its return (its commit), i.e. the version deployed when it committed;
* each version's predictions match scikit-learn for that version.

Used by tests/test_switch_concurrency.py (a few seconds per case) and by
benchmarks/switch_stress.py (8 writers x 30 s).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import psycopg

import indb
from tests.conftest import NUMERIC, loan_frame
from tests.parity import assert_matches_sklearn

COLUMNS = ", ".join(NUMERIC)


@dataclass
class Report:
    mode: str
    runtime: str
    humility: bool
    writers: int
    seconds: float
    rows: int = 0
    statements: int = 0
    switches: list[float] = field(default_factory=list)  # seconds per db.deploy call
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    insert_latencies: list[float] = field(default_factory=list)

    @property
    def max_switch(self) -> float:
        return max(self.switches, default=0.0)

    def summary(self) -> str:
        lat = np.array(self.insert_latencies or [0.0]) * 1000
        return (
            f"{self.mode:4} {self.runtime:4} humility={'yes' if self.humility else 'no ':3} "
            f"writers={self.writers} {self.seconds:.0f}s: {self.rows} rows in {self.statements} inserts "
            f"({self.rows / self.seconds:.0f} rows/s), insert p50 {np.percentile(lat, 50):.1f} ms "
            f"p99 {np.percentile(lat, 99):.1f} ms max {lat.max():.0f} ms; {len(self.switches)} switches, "
            f"max {self.max_switch * 1000:.0f} ms, p50 {np.median(self.switches or [0]) * 1000:.0f} ms; "
            f"{len(self.failures)} failures, {len(self.problems)} problems"
        )


def models(frame):
    """Two versions that disagree on many rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = frame.label
    first = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame[NUMERIC], labels)
    shifted = np.where(frame.income > frame.income.median(), "repaid", "default")
    second = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(frame[NUMERIC], shifted)
    return {1: first, 2: second}


def run(
    url: str,
    *,
    mode: str = "bulk",
    runtime: str = "onnx",
    humility: bool = False,
    writers: int = 8,
    seconds: float = 30.0,
    switch_every: float = 1.0,
    batch: int = 20,
    max_switch: float = 1.0,
    table: str = "stress",
    min_switches: int = 0,
) -> Report:
    report = Report(mode, runtime, humility, writers, seconds)
    train = loan_frame(1_000, seed=3)
    versions = models(train)
    data = loan_frame(20_000, seed=7)[NUMERIC]
    values_of = [
        [float(r.income), float(r.debt), int(r.age), float(r.tenure)] for r in data.itertuples(index=False)
    ]
    with indb.connect(url) as db:
        for number in (1, 2):
            db.register_model("stress_m", versions[number], sample=train[NUMERIC])
        db.deploy("stress_m", table=table, version=1, runtime=runtime, mode=mode)
        if humility:
            low, high = np.percentile(train.income, [5, 95])
            db.add_humility_rule(table, "income_range", "outside_range", "income", low=low, high=high)
            db.add_humility_rule(table, "unsure", "uncertain", low=0.45, high=0.55)

    lock = threading.Lock()
    stop = threading.Event()
    statements: list[tuple[float, float, list[int], int | None]] = []
    epochs: list[tuple[float, float, int]] = [(0.0, 0.0, 1)]  # (switch started, committed, version)

    def write(number: int) -> None:
        rng = np.random.default_rng(number)
        sql = f"INSERT INTO {table} ({COLUMNS}) VALUES " + ", ".join(["(%s, %s, %s, %s)"] * batch)
        sql += " RETURNING id"
        try:
            # Odd writers insert in autocommit; even ones in a transaction that also reads the
            # deployed version just before COMMIT: under the deployment's lock no switch can
            # commit in between, so that is the version deployed when the insert commits.
            checked = number % 2 == 0
            with psycopg.connect(url, autocommit=not checked) as app:
                while not stop.is_set():
                    picks = rng.integers(0, len(values_of), batch)
                    params = [v for i in picks for v in values_of[i]]
                    began = time.monotonic()
                    ids = [r[0] for r in app.execute(sql, params).fetchall()]
                    seen = None
                    if checked:
                        ((seen,),) = app.execute(
                            "SELECT version FROM indb.deployments WHERE table_name = %s", [table]
                        ).fetchall()
                        app.commit()
                    finished = time.monotonic()
                    with lock:
                        statements.append((began, finished, ids, seen))
        except Exception as e:  # reported below
            with lock:
                report.failures.append(f"writer {number}: {type(e).__name__}: {e}")

    def switch() -> None:
        version = 1
        try:
            with indb.connect(url) as admin:
                next_at = time.monotonic() + switch_every
                while not stop.is_set():
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    if stop.is_set():
                        break
                    version = 3 - version
                    began = time.monotonic()
                    admin.deploy("stress_m", table=table, version=version, runtime=runtime, mode=mode)
                    committed = time.monotonic()
                    with lock:
                        epochs.append((began, committed, version))
                        report.switches.append(committed - began)
                    next_at = committed + switch_every
        except Exception as e:  # reported below
            with lock:
                report.failures.append(f"switch: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    switcher = threading.Thread(target=switch)
    started = time.monotonic()
    for thread in [*threads, switcher]:
        thread.start()
    time.sleep(seconds)
    # on a loaded machine fewer switches fit in ``seconds``: run on until ``min_switches`` are
    # done (at most three times as long), so a test's count does not depend on the load
    deadline = started + 4 * seconds
    while len(report.switches) < min_switches and not report.failures and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in [*threads, switcher]:
        thread.join(120)
    report.seconds = time.monotonic() - started
    if any(t.is_alive() for t in [*threads, switcher]):
        report.failures.append("a thread is stuck after 120 s (deadlock?)")
        return report
    report.statements = len(statements)
    report.insert_latencies = [f - b for b, f, *_ in statements]
    # a switch waits for the statements already running when it asked for its lock, never for
    # later ones (that was the starvation of 11.3): its bound is its own work plus the longest insert
    longest_insert = max(report.insert_latencies, default=0.0)
    report.problems += [
        f"switch took {s:.3f} s (bound {max_switch:.1f} s + longest insert {longest_insert:.3f} s)"
        for s in report.switches
        if s >= max_switch + longest_insert
    ]
    _check_rows(url, table, mode, versions, statements, epochs, report)
    return report


def _check_rows(url, table, mode, versions, statements, epochs, report: Report) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if mode == "bulk":
            ((orphans,),) = conn.execute(
                f"SELECT count(*) FROM {table}_predictions p WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} r WHERE r.id = p.id)"
            ).fetchall()
            ((duplicates,),) = conn.execute(
                f"SELECT count(*) - count(DISTINCT id) FROM {table}_predictions"
            ).fetchall()
            if orphans:
                report.problems.append(f"{orphans} predictions without a request row")
            if duplicates:
                report.problems.append(f"{duplicates} duplicate predictions")
        rows = conn.execute(
            f"SELECT r.id, {', '.join('r.' + c for c in NUMERIC)}, p.model_version, p.prediction "
            f"FROM {table} r LEFT JOIN {table}_predictions p ON p.id = r.id ORDER BY r.id"
        ).fetchall()
    report.rows = len(rows)
    ids = [r[0] for r in rows]
    if len(ids) != len(set(ids)):
        report.problems.append("duplicate request ids")
    unscored = [r[0] for r in rows if r[5] is None or r[6] is None]
    if unscored:
        report.problems.append(f"{len(unscored)} unscored rows, e.g. id {unscored[0]}")
    version_of = {r[0]: r[5] for r in rows}
    expected_rows = sum(len(s[2]) for s in statements)
    if expected_rows != len(rows):
        report.problems.append(f"{len(rows)} rows in the table, the writers inserted {expected_rows}")
    wrong = mismatched = 0
    for began, finished, statement_ids, seen in statements:
        used = {version_of.get(i) for i in statement_ids}
        if len(used) != 1:
            report.problems.append(f"one statement scored by versions {used}")
            continue
        (version,) = used
        # versions deployed at some moment in [began, finished]: the one in force at `began`
        # and any whose switch committed before `finished`
        possible = {max(((c, v) for s, c, v in epochs if c <= began), default=(0, 1))[1]}
        possible |= {v for start, committed, v in epochs if committed > began and start < finished}
        if version not in possible:
            wrong += 1
        if seen is not None and seen != version:
            mismatched += 1
    if mismatched:
        report.problems.append(
            f"{mismatched} transactions scored by a version other than the one deployed when they committed"
        )
    if wrong:
        report.problems.append(f"{wrong} statements scored by a version not deployed when they committed")
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["id", *NUMERIC, "model_version", "prediction"]).dropna()
    for number, model in versions.items():
        part = frame[frame.model_version == number]
        if len(part):
            try:
                assert_matches_sklearn(model, part[NUMERIC], part.prediction)
            except AssertionError as e:
                report.problems.append(f"version {number} predictions differ from scikit-learn: {e}")

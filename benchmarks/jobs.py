"""What indb's DuckDB job runner and scheduler cost per run, with an action that does nothing.

Three ways of running an empty action, in one process, on one DuckDB file, median of
``--rounds`` rounds of ``--runs`` runs each:
  bare       the action function called directly (the floor: no bookkeeping at all)
  statements the two catalog statements every run writes, run by hand: INSERT the
             ``running`` row, UPDATE it to ``succeeded`` (the floor of recording a run)
  run_job    ``runner.run(backend, name)``: the job read from the catalog, its lock, the
             ``running`` row, the action, the result and the failure count check
  scheduler  ``Scheduler.tick()`` with ``--runs`` jobs due at once (a driven clock moves one
             minute per round): the due query, each run as above, and each job's next_run
Prints ms/run and runs/s per way, run_job and scheduler against statements, and one
``RESULT {json}`` line. Bounded by ``--budget`` seconds (rounds stop early past it).

    python benchmarks/jobs.py [--runs 200] [--rounds 5] [--budget 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime

import indb
from indb.jobs import actions, api, runner
from indb.jobs.clock import ManualClock
from indb.jobs.scheduler import Scheduler


def _empty(backend, arguments, context):
    return {}


def _timed(function, runs: int) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        function()
    return (time.perf_counter() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds")
    args = parser.parse_args()
    actions.register(actions.Action("bench_empty", _empty))
    folder = tempfile.mkdtemp(prefix="indb-jobs-bench-")
    db = indb.connect(os.path.join(folder, "jobs.duckdb"))
    backend = db.backend
    clock = ManualClock(datetime(2025, 1, 1))
    db._call(api.schedule, api.JobSpec("empty", "@yearly", "bench_empty"), clock=clock)
    for n in range(args.runs):
        db._call(api.schedule, api.JobSpec(f"due_{n}", "* * * * *", "bench_empty"), clock=clock)
    scheduler = Scheduler(backend, clock=clock)
    context = actions.Context("empty", 0, "bench", None, clock.now())
    insert = (
        "INSERT INTO indb.job_runs (job, status, runner) VALUES ('bare', 'running', 'manual') RETURNING id"
    )
    update = "UPDATE indb.job_runs SET status = 'succeeded', finished_at = now() WHERE id = $id"

    def statements_only():
        ((run_id,),) = backend.rows(insert)
        backend.execute(update, {"id": run_id})

    def tick():
        clock.advance(60)
        done = scheduler.tick()
        assert len(done) == args.runs and all(r.ok for r in done), done[:3]

    ways = {
        "bare": lambda: _timed(lambda: _empty(backend, {}, context), args.runs),
        "statements": lambda: _timed(statements_only, args.runs),
        "run_job": lambda: _timed(lambda: runner.run(backend, "empty", clock=clock), args.runs),
        "scheduler": lambda: _timed(tick, 1) / args.runs,
    }
    timings: dict[str, list[float]] = {way: [] for way in ways}
    deadline = time.perf_counter() + args.budget
    for _ in range(args.rounds):
        for way, measure in ways.items():
            timings[way].append(measure())
        if time.perf_counter() > deadline:
            break
    medians = {way: statistics.median(values) for way, values in timings.items()}
    print(f"indb {indb.__version__}, load average {os.getloadavg()[0]:.2f}, {len(timings['bare'])} rounds")
    print(f"{'way':<11} {'ms/run':>9} {'runs/s':>10}")
    for way, seconds in medians.items():
        print(f"{way:<11} {seconds * 1e3:>9.3f} {1 / seconds:>10,.0f}")
    ratios = {way: medians[way] / medians["statements"] for way in ("run_job", "scheduler")}
    print(f"run_job = {ratios['run_job']:.1f}x the two statements; scheduler = {ratios['scheduler']:.1f}x")
    ((recorded,),) = backend.rows("SELECT count(*) FROM indb.job_runs WHERE job <> 'bare'")
    result = {
        "benchmark": "jobs_overhead",
        "runs": args.runs,
        "rounds": len(timings["bare"]),
        "ms_per_run": {way: round(s * 1e3, 4) for way, s in medians.items()},
        "runs_per_second": {way: round(1 / s, 1) for way, s in medians.items()},
        "ratio_to_statements": {way: round(r, 2) for way, r in ratios.items()},
        "job_runs_recorded": int(recorded),
    }
    print("RESULT " + json.dumps(result))
    db.close()


if __name__ == "__main__":
    main()

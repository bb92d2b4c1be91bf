"""The ``indb`` command: demo, models, deploy, features, sql. ``--db URL`` picks the database."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from contextlib import contextmanager

import pandas as pd

import indb
from indb.errors import IndbError
from indb.progress import Progress


def _show(frame: pd.DataFrame | None, args=None) -> None:
    if getattr(args, "json", False):
        records = [] if frame is None else json.loads(frame.to_json(orient="records", date_format="iso"))
        print(json.dumps(records, indent=2, default=str))
        return
    if frame is None:
        print("OK")
    elif frame.empty:
        print("(no rows)")
    else:
        with pd.option_context(
            "display.max_rows",
            200,
            "display.width",
            200,
            "display.max_columns",
            50,
            "display.max_colwidth",
            60,
        ):
            print(frame.to_string(index=False))


def _version(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else text


FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _read_frame(path: str) -> pd.DataFrame:
    """A sample or data file: CSV or Parquet, by extension."""
    lower = path.lower()
    if lower.endswith(FILE_SUFFIXES) and not os.path.isfile(path):
        raise IndbError(f"cannot read {path!r}: no such file")
    try:
        if lower.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
        if lower.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise IndbError(f"cannot read {path!r}: {e}") from None
    raise IndbError(f"cannot read {path!r}: give a .csv or .parquet file")


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as e:
        raise IndbError(f"cannot read {path!r}: {e.strerror}") from None


def _json_option(text: str | None, option: str):
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise IndbError(f"{option} is not JSON ({e.msg}): {text!r}") from None


@contextmanager
def _working(label: str, note: str):
    """A one-step progress bar (stderr) around work that can take seconds."""
    with Progress(1, label, unit="steps") as bar, bar.step(note):
        yield


def cmd_demo(args) -> None:
    from indb.demo import run_demo

    run_demo(args.db, rows=args.rows, seed=args.seed)


def cmd_models_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.models(), args)


def cmd_models_register(args) -> None:
    with Progress(3, f"registering {args.name}", unit="steps") as bar:
        with bar.step(f"reading {args.onnx} and {args.sample}"):
            data, sample = _read_bytes(args.onnx), _read_frame(args.sample)
        with indb.connect(args.db) as db:
            with bar.step("checking the ONNX model against the sample"):
                mv = db.register_model(
                    args.name,
                    data,
                    sample=sample,
                    metrics=_json_option(args.metrics, "--metrics"),
                    tags=_json_option(args.tags, "--tags"),
                    description=args.description,
                )
            with bar.step("done"):
                pass
    print(f"registered {mv.name} version {mv.version} (sha256 {mv.sha256[:12]}): {mv.describe()}")


def cmd_models_show(args) -> None:
    with indb.connect(args.db) as db:
        versions = db.model_versions(args.name)
        wanted = _version(args.version)
        if wanted is not None:
            versions = [db.get_model(args.name, wanted)]
        aliases = db.sql(
            "SELECT alias, version FROM indb.model_aliases WHERE model = $m ORDER BY alias",
            {"m": args.name},
        )
        if args.json:
            records = [
                {
                    "name": mv.name,
                    "version": mv.version,
                    "aliases": [a for a, v in aliases.itertuples(index=False) if v == mv.version],
                    "sha256": mv.sha256,
                    "task": mv.task,
                    "classes": list(mv.classes) if mv.classes else None,
                    "call": mv.signature.describe(f"predict_{mv.name}_v{mv.version}"),
                    "metrics": mv.metrics,
                    "tags": mv.tags,
                    "created_at": str(mv.created_at),
                    "created_by": mv.created_by,
                    "size_bytes": mv.size_bytes,
                }
                for mv in versions
            ]
            print(json.dumps(records, indent=2, default=str))
            return
        for mv in versions:
            stages = [a for a, v in aliases.itertuples(index=False) if v == mv.version]
            print(f"{mv.name} version {mv.version}" + (f"  [{', '.join(stages)}]" if stages else ""))
            print(f"  sha256     {mv.sha256} (verified)")
            print(f"  task       {mv.task}" + (f", classes {list(mv.classes)}" if mv.classes else ""))
            print(f"  call       {mv.signature.describe(f'predict_{mv.name}_v{mv.version}')}")
            estimator = (mv.recipe.get("estimator") or {}).get("estimator", "ONNX bytes")
            print(f"  estimator  {estimator}")
            if mv.description:
                print(f"  about      {mv.description}")
            for label, value in (
                ("metrics", mv.metrics),
                ("tags", mv.tags),
                ("conversion", mv.conversion),
            ):
                if value:
                    print(f"  {label:<10} {json.dumps(value)}")
            print(f"  created    {mv.created_at} by {mv.created_by}, {mv.size_bytes:,} bytes")


def cmd_models_alias(args) -> None:
    with indb.connect(args.db) as db:
        version = db.set_alias(args.name, args.alias, _version(args.version))
        print(f"{args.name}: {args.alias} -> version {version}")


def cmd_models_tag(args) -> None:
    """Merge KEY=VALUE tags into a version's tags; --remove drops tags (audited)."""
    tags: dict = {}
    for item in args.tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"indb: tag {item!r} is not KEY=VALUE")
        tags[key] = value
    tags.update({key: None for key in args.remove})
    with indb.connect(args.db) as db:
        mv = db.set_tags(args.name, tags, _version(args.version), replace=args.replace)
        print(f"{mv.name} version {mv.version} tags: {json.dumps(mv.tags or {})}")


def cmd_models_describe(args) -> None:
    with indb.connect(args.db) as db:
        db.set_description(args.name, args.description, _version(args.version))
        which = f"version {args.version}" if args.version is not None else "the model"
        print(f"{args.name}: description of {which} set")


def cmd_models_sql(args) -> None:
    with indb.connect(args.db) as db, Progress(1, f"compiling {args.name}", unit="steps") as bar:
        with bar.step("compiling the ONNX graph to SQL"):
            text = db.compile_sql(args.name, _version(args.version), dialect=args.dialect)
    print(text)


def cmd_deploy(args) -> None:
    with indb.connect(args.db) as db, Progress(1, f"deploying {args.model}", unit="steps") as bar:
        # Compiling and verifying a large model takes seconds.
        with bar.step(f"runtime {args.runtime}: compiling, verifying, installing"):
            deployment = db.deploy(
                args.model,
                table=args.table,
                version=_version(args.version),
                mode=args.mode,
                runtime=args.runtime,
                dry_run=args.dry_run,
                features_from=args.features_from,
                explain=args.explain,
            )
        if args.dry_run:
            print(";\n\n".join(deployment.statements) + ";")
            return
        print(f"runtime {deployment.runtime}: {deployment.reason}")
        print(
            f"{deployment.model} version {deployment.version} now scores every insert into "
            f"{deployment.table} -> {deployment.predictions_table}; ground truth goes to "
            f"{deployment.ground_truth_table}; view {deployment.view}"
        )


def cmd_insert(args) -> None:
    """db.insert from the shell: a CSV or Parquet file, a table or view, or a SELECT query."""
    source = args.source
    if source.lower().endswith(FILE_SUFFIXES):
        source = _read_frame(source)
    with indb.connect(args.db) as db, _working(f"inserting into {args.table}", "inserting and scoring rows"):
        rows = db.insert(args.table, source)
    print(f"{rows:,} rows inserted into {args.table}")


def cmd_undeploy(args) -> None:
    with indb.connect(args.db) as db:
        statements = db.undeploy(args.table, drop_tables=args.drop_tables)
    kept = "" if args.drop_tables else f"; {args.table} and its predictions stay"
    print(f"{args.table} is no longer scored{kept}")
    for text in statements:
        print(f"  {text.splitlines()[0]}")


def cmd_features_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.feature_sets(), args)


def cmd_features_ingest(args) -> None:
    with indb.connect(args.db) as db, _working(f"ingesting into {args.feature_set}", "loading rows"):
        rows = db.ingest(args.feature_set, args.source, statistics=args.statistics)
    print(f"{rows:,} rows loaded into feature set {args.feature_set}")


def cmd_features_stats(args) -> None:
    with indb.connect(args.db) as db:
        columns = ["feature", "kind", "count", "nulls", "distinct_count", "min", "max", "mean", "stddev"]
        _show(db.feature_statistics(args.feature_set, args.version)[columns], args)


def cmd_training_set(args) -> None:
    with indb.connect(args.db) as db:
        with _working("training set", "point-in-time join"):
            ts = db.training_set(
                args.spine,
                args.features,
                event_time=args.event_time,
                label=args.label,
                ttl=args.ttl,
                materialize=args.name is not None,
                name=args.name,
                dry_run=args.dry_run,
            )
        if args.dry_run:
            print(ts.sql + ";")
            if ts.params:
                print(f"-- parameters: {json.dumps(ts.params)}")
        elif ts.table:
            print(f"training set {ts.name} version {ts.version}: table {ts.table}, {ts.row_count:,} rows")
        else:
            _show(ts.frame, args)


def cmd_deployments(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.deployments(), args)


def cmd_challengers(args) -> None:
    """List a deployment's challengers, or add or remove one (issue 13.4)."""
    with indb.connect(args.db) as db:
        if args.add is not None:
            done = db.add_challenger(
                args.table,
                args.add,
                mode=args.mode,
                weight=args.weight,
                runtime=args.runtime,
                dry_run=args.dry_run,
            )
        elif args.remove is not None:
            done = db.remove_challenger(args.table, args.remove, dry_run=args.dry_run)
        else:
            _show(db.challengers(args.table), args)
            return
        if args.dry_run:
            for text in done.statements:
                print(text.rstrip(";") + ";")
            return
        _show(db.challengers(args.table), args)


def cmd_sql(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.sql(args.query), args)


def cmd_audit_verify(args) -> int:
    """Recompute the audit log's hash chain; non-zero exit on a break."""
    from indb import audit

    with indb.connect(args.db) as db:
        result = db._call(audit.verify)
    print(result)
    return 0 if result.ok else 2


def cmd_doctor(args) -> int:
    from indb import catalog
    from indb.backends import open_backend

    backend = open_backend(args.db)
    try:
        checks = backend.health() + catalog.health(backend)
    finally:
        backend.close()
    missing = [c.name for c in checks if not c.ok]
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
        return 1 if missing else 0
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FIX '} {check.name:<14} {check.detail}")
        if not check.ok and check.fix:
            print(f"     {'':<14} -> {check.fix}")
    print("\nall good" if not missing else f"\nto fix: {', '.join(missing)}")
    return 1 if missing else 0


def cmd_monitor_run(args) -> None:
    with indb.connect(args.db) as db:
        with _working(f"monitor {args.name}", "computing windows"):
            summary = db.run_monitor(args.name)
        print(summary)
        if not summary.alerts.empty:
            _show(summary.alerts)


def cmd_monitor_report(args) -> None:
    with indb.connect(args.db) as db:
        text = db.monitor_report(args.name)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"report of monitor {args.name} written to {args.out}")


def cmd_monitor_results(args) -> None:
    with indb.connect(args.db) as db:
        frame = db.alerts(args.name) if args.alerts else db.monitor_results(args.name)
        _show(frame, args)


def cmd_monitor_alerts(args) -> None:
    with indb.connect(args.db) as db:
        if args.resolve is not None or args.acknowledge is not None:
            if args.resolve is not None:
                done = db.resolve_alert(args.resolve, args.note)
            else:
                done = db.acknowledge_alert(args.acknowledge, args.note)
            print(f"alert {done['id']} of monitor {done['monitor']}: {done['status']}")
            return
        frame = db.alerts(args.name)
        if not args.all:
            frame = frame[frame.status != "resolved"]
        _show(frame)


def cmd_monitor_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.monitors(), args)


def cmd_monitor_create(args) -> None:
    chosen = [args.reference_window, args.reference_query, args.reference_training_set]
    if sum(c is not None for c in chosen) != 1:
        raise IndbError(
            "give one reference: --reference-window START END, --reference-query SQL "
            "or --reference-training-set NAME"
        )
    reference = args.reference_query or args.reference_training_set
    if args.reference_window is not None:
        reference = tuple(args.reference_window)
    elif args.reference_query is not None:
        reference = {"query": args.reference_query}
    elif args.reference_training_set is not None:
        reference = {"training_set": args.reference_training_set}
    with indb.connect(args.db) as db, Progress(1, f"monitor {args.name}", unit="steps") as bar:
        with bar.step("computing the reference statistics"):
            monitor = db.create_monitor(
                args.name,
                args.deployment,
                reference=reference,
                window=args.window,
                features=args.feature,
                thresholds=_json_option(args.thresholds, "--thresholds"),
                mode=args.mode,
                protected=args.protected,
                favorable=args.favorable,
                importance=args.importance,
            )
    print(f"monitor {args.name} watches {args.deployment}: {monitor}")


def cmd_transforms_register(args) -> None:
    with Progress(2, f"registering transform {args.name}", unit="steps") as bar:
        with bar.step(f"reading {args.onnx} and {args.sample}"):
            data, sample = _read_bytes(args.onnx), _read_frame(args.sample)
        with indb.connect(args.db) as db, bar.step("compiling to SQL and checking it"):
            transform = db.register_transform(args.name, data, sample=sample, source=args.source)
    where = f"; view {transform.view} over {transform.source}" if transform.source else ""
    print(f"transform {transform.name}: {', '.join(transform.outputs)}{where}")


def cmd_transforms_drop(args) -> None:
    with indb.connect(args.db) as db:
        db.drop_transform(args.name)
    print(f"transform {args.name} dropped (its view and transform_{args.name} too)")


def cmd_transforms_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.transforms(), args)


def _job_arguments(args) -> dict:
    """--arg KEY=VALUE (VALUE read as JSON when it is JSON: 30, true, ["a"]; else text)."""
    arguments = dict(_json_option(args.args_json, "--args-json") or {})
    for item in args.arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise IndbError(f"--arg {item!r} is not KEY=VALUE")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


def _on_alert(text: str | None) -> dict | None:
    """--on-alert monitor=loans[,metric=psi]"""
    if text is None:
        return None
    found = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key or not value:
            raise IndbError(f"--on-alert {text!r}: expected monitor=NAME[,metric=NAME]")
        found[key] = value
    return found


def _print_plan(plan) -> None:
    print(plan)


def _run_line(run) -> str:
    line = f"job {run.job}: run {run.id} {run.status} (attempt {run.attempt}, {run.reason})"
    if run.error:
        line += f": {run.error}"
    elif run.result:
        line += f" {json.dumps(run.result, default=str)}"
    return line


def _runs_json(runs) -> None:
    print(json.dumps([dataclasses.asdict(r) for r in runs], indent=2, default=str))


def cmd_jobs_add(args) -> None:
    with indb.connect(args.db) as db:
        job = db.schedule(
            args.name,
            args.schedule,
            args.action,
            timezone=args.timezone,
            on_alert=_on_alert(args.on_alert),
            retries=args.retries,
            retry_delay=args.retry_delay,
            timeout=args.timeout,
            alert_after_failures=args.alert_after_failures,
            catch_up=args.catch_up,
            comment=args.comment,
            enabled=not args.disabled,
            dry_run=args.dry_run,
            **_job_arguments(args),
        )
    if args.dry_run:
        _print_plan(job)
        return
    when = f"next run {job.next_run} UTC" if job.next_run else "no scheduled run"
    print(f"job {job.name}: {job.action} {json.dumps(job.arguments)}; {when}")


def cmd_jobs_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.jobs(), args)


def cmd_jobs_show(args) -> None:
    with indb.connect(args.db) as db:
        job = db.job(args.name)
        runs = db.job_runs(args.name, limit=args.limit)
    record = dataclasses.asdict(job)
    if args.json:
        record["runs"] = json.loads(runs.to_json(orient="records", date_format="iso"))
        print(json.dumps(record, indent=2, default=str))
        return
    for key, value in record.items():
        if value is not None:
            print(f"  {key:<21} {json.dumps(value) if isinstance(value, dict) else value}")
    print(f"\nlast {args.limit} runs:")
    _show(runs[["id", "status", "attempt", "reason", "scheduled_for", "started_at", "finished_at", "error"]])


def cmd_jobs_run(args) -> int:
    with indb.connect(args.db) as db:
        run = db.run_job(args.name)
    if args.json:
        _runs_json([run])
    else:
        print(_run_line(run))
    return 0 if run.status == "succeeded" else 1


def cmd_jobs_history(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.job_runs(args.name, limit=args.limit), args)


def cmd_jobs_enable(args) -> None:
    with indb.connect(args.db) as db:
        plan = db.enable_job(args.name, args.enabled, dry_run=args.dry_run)
    if args.dry_run:
        _print_plan(plan)
    else:
        print(f"job {args.name}: {'enabled' if args.enabled else 'disabled'}")


def cmd_jobs_remove(args) -> None:
    with indb.connect(args.db) as db:
        plan = db.unschedule(args.name, dry_run=args.dry_run)
    if args.dry_run:
        _print_plan(plan)
    else:
        print(f"job {args.name} removed (its runs stay in indb.job_runs)")


def cmd_jobs_run_due(args) -> int:
    from indb.jobs.scheduler import Scheduler

    scheduler = Scheduler.open(args.db or _default_url())
    try:
        runs = scheduler.run_due()
    finally:
        scheduler.backend.close()
    if args.json:
        _runs_json(runs)
    else:
        for run in runs:
            print(_run_line(run))
        if not runs:
            print("nothing due")
    return 0 if all(r.status in ("succeeded", "skipped") for r in runs) else 1


def _default_url() -> str:
    import os

    from indb.backends import DEFAULT_URL

    return os.environ.get("INDB_URL") or DEFAULT_URL


def cmd_scheduler(args) -> int:
    """Run due jobs until SIGTERM/SIGINT: the run under way gets --grace seconds to finish,
    then is interrupted and recorded failed; a second signal interrupts it at once."""
    import logging
    import signal
    import threading

    from indb.jobs import runner
    from indb.jobs.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    scheduler = Scheduler.open(args.db or _default_url(), poll=args.poll, grace=args.grace)
    signals: list[str] = []
    stoppers: list[threading.Thread] = []

    def handle(number, frame) -> None:
        name = signal.Signals(number).name
        reason = f"the scheduler stopped ({name})"
        if signals:
            runner.interrupt(scheduler.backend, reason)
            return
        signals.append(name)
        print(f"indb scheduler: {name}: stopping", file=sys.stderr, flush=True)
        stopper = threading.Thread(target=scheduler.stop, kwargs={"reason": reason}, daemon=True)
        stoppers.append(stopper)
        stopper.start()

    try:
        scheduler.start()
    except BaseException:
        scheduler.backend.close()
        raise
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    print(
        f"indb scheduler: running the jobs of {scheduler.backend.url} (pid {os.getpid()})",
        file=sys.stderr,
        flush=True,
    )
    while scheduler.thread.is_alive():
        scheduler.thread.join(0.2)
    for stopper in stoppers:  # stop() releases the lock and closes the connection
        while stopper.is_alive():
            stopper.join(0.2)
    print("indb scheduler: stopped", file=sys.stderr, flush=True)
    return 0


# -- models as files and verify (issue 14.3) ---------------------------------------------------
def _name_at(text: str) -> tuple[str, int | str | None]:
    """NAME, NAME@VERSION or NAME@alias."""
    name, _, version = text.partition("@")
    return name, _version(version or None)


def cmd_models_export(args) -> None:
    name, version = _name_at(args.model)
    with indb.connect(args.db) as db:
        folder = db.export_model(name, args.dir, version)
        mv = db.get_model(name, version)
    print(f"exported {mv.name} version {mv.version} (sha256 {mv.sha256[:12]}) to {folder}")


def cmd_models_import(args) -> None:
    from indb.governance import files

    with indb.connect(args.db) as db:
        mv, created = db._call(files.import_, args.dir, args.name)
    if args.json:
        print(json.dumps({"name": mv.name, "version": mv.version, "sha256": mv.sha256, "created": created}))
    elif created:
        print(f"imported {mv.name} version {mv.version} (sha256 {mv.sha256[:12]}): {mv.describe()}")
    else:
        print(f"{mv.name} version {mv.version} already has sha256 {mv.sha256[:12]}: nothing to import")


def _limits(pairs: list[str] | None, option: str) -> dict[str, float]:
    limits = {}
    for pair in pairs or []:
        metric, sep, value = pair.partition("=")
        try:
            limits[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not metric.strip():
            raise IndbError(f"{option} takes METRIC=NUMBER, e.g. {option} auc=0.8; got {pair!r}")
    return limits


def cmd_verify(args) -> int:
    """Exit 0 when every check passes, 1 when one fails, 2 on bad input (CI gates on it)."""
    try:
        name, version = _name_at(args.model)
        minimums, maximums = _limits(args.min_metric, "--min-metric"), _limits(args.max_drift, "--max-drift")
        with indb.connect(args.db) as db:
            report = db.verify_model(
                name,
                version,
                min_metrics=minimums,
                max_drift=maximums,
                allow_no_drift_data=args.allow_no_drift_data,
            )
    except IndbError as e:
        print(f"indb: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.text())
    return 0 if report.passed else 1


def _add_model_files(commands, verbs, common, listing) -> None:
    export = verbs.add_parser("export", parents=[common], help="write a version as files for git")
    export.add_argument("model", metavar="NAME[@VERSION|@ALIAS]")
    export.add_argument("dir", metavar="DIR")
    export.set_defaults(run=cmd_models_export)
    imported = verbs.add_parser("import", parents=[listing], help="check and register an exported folder")
    imported.add_argument("dir", metavar="DIR")
    imported.add_argument("--name", default=None, help="register under this name instead")
    imported.set_defaults(run=cmd_models_import)
    verify = commands.add_parser(
        "verify", parents=[listing], help="check metrics and drift of a version (exit 1 on failure, for CI)"
    )
    verify.add_argument("model", metavar="NAME[@VERSION|@ALIAS]")
    limits = (("--min-metric", "METRIC=MIN", "auc=0.8"), ("--max-drift", "METRIC=MAX", "psi=0.2"))
    for option, metavar, example in limits:
        verify.add_argument(option, action="append", metavar=metavar, help=f"e.g. {example} (repeatable)")
    verify.add_argument(
        "--allow-no-drift-data",
        action="store_true",
        help="pass a --max-drift check that has no monitor results (not deployed yet); it fails by default",
    )
    verify.set_defaults(run=cmd_verify)


# -- model documentation (issue 14.5) ----------------------------------------------------------
def cmd_models_doc(args) -> None:
    from indb.governance import card

    name, version = _name_at(args.model)
    fields = {f: getattr(args, f) for f in card.FIELDS}
    if any(v is not None for v in fields.values()):
        with indb.connect(args.db) as db:
            db.document_model(name, version, **fields)
            what = name if version is None else f"{name}@{version}"
            print(f"documented {what}: {', '.join(f for f, v in fields.items() if v is not None)}")
            if not args.out:
                return
    if not args.out:
        raise IndbError("give --out FILE (.html or .md) for the card, or text fields to document")
    format = card.format_of(args.out, args.format)
    with indb.connect(args.db) as db:
        text = db.model_card(name, version, format)
    try:
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as e:
        raise IndbError(f"cannot write {args.out!r}: {e.strerror}") from None
    print(f"wrote the model card of {args.model} to {args.out}")


def _add_model_doc(verbs, common) -> None:
    doc = verbs.add_parser(
        "doc", parents=[common], help="write a model card (HTML or Markdown) or document a model"
    )
    doc.add_argument("model", metavar="NAME[@VERSION|@ALIAS]")
    doc.add_argument("--out", metavar="FILE", help="the card: model.html or model.md")
    doc.add_argument("--format", choices=["html", "md"], default=None, help="default: from --out's suffix")
    for field, text in (
        ("purpose", "what the model is for"),
        ("intended_use", "who should use it and how"),
        ("limitations", "known limitations"),
        ("ethical_considerations", "ethical considerations"),
    ):
        doc.add_argument(
            "--" + field.replace("_", "-"), dest=field, metavar="TEXT", help=f"store {text} ('' clears)"
        )
    doc.set_defaults(run=cmd_models_doc)


# -- lifecycle: training runs and retraining (indb.lifecycle) --------------------------------
def cmd_models_leaderboard(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.leaderboard(args.name, args.metric), args)


def cmd_retrain(args) -> int:
    with indb.connect(args.db) as db, _working("retrain", args.name):
        run = db.retrain(args.name, triggered_by=args.triggered_by, seed=args.seed)
    if args.json:
        print(json.dumps(run.to_dict(), indent=2, default=str))
    else:
        line = f"training run {run.id} of {run.model}: {run.status}"
        if run.version is not None:
            line += f", version {run.version} (parent {run.parent_version})"
        print(line)
        for what, values in (("candidate", run.metrics), ("champion", run.champion_metrics)):
            if values:
                shown = ", ".join(f"{k} {v:.4g}" if v is not None else f"{k} -" for k, v in values.items())
                print(f"  {what}: {shown}")
        if run.error or (run.notes or {}).get("skipped"):
            print(f"  {run.error or run.notes['skipped']}")
    return 1 if run.status == "failed" else 0


def _add_leaderboard(verbs, listing) -> None:
    board = verbs.add_parser(
        "leaderboard", parents=[listing], help="versions ranked on the latest training run's holdout"
    )
    board.add_argument("name")
    board.add_argument(
        "--metric", default=None, help="one metric (accuracy, auc, log_loss, f1, mae, rmse, r2)"
    )
    board.set_defaults(run=cmd_models_leaderboard)


def _add_retrain(commands, listing) -> None:
    retrain = commands.add_parser(
        "retrain", parents=[listing], help="run a model's retraining policy now, in this process"
    )
    retrain.add_argument("name")
    retrain.add_argument("--seed", type=int, default=None, help="set every random_state of the recipe")
    retrain.add_argument("--triggered-by", default=None, help="recorded in indb.training_runs")
    retrain.set_defaults(run=cmd_retrain)


# -- comparison and promotion (issue 13.5) --------------------------------------------------
def _print_switch(switch) -> None:
    if switch.dry_run:
        print(f"-- {switch.action} {switch.table}: {switch.model} version {switch.from_version} -> "
              f"{switch.to_version} (dry run: nothing changed)")  # fmt: skip
        for text in switch.statements:
            print(text if text.startswith("--") else text + ";")
        return
    print(f"{switch.table}: {switch.model} version {switch.from_version} -> {switch.to_version} "
          f"({switch.action}: {switch.reason})")  # fmt: skip


def cmd_deployments_promote(args) -> None:
    with indb.connect(args.db) as db:
        switch = db.promote(args.table, _version(args.version), reason=args.reason, dry_run=args.dry_run)
    _print_switch(switch)


def cmd_deployments_rollback(args) -> None:
    with indb.connect(args.db) as db:
        switch = db.rollback(args.table, _version(args.to), reason=args.reason, dry_run=args.dry_run)
    _print_switch(switch)


def _comparison_options(args) -> dict:
    options = {"resamples": args.resamples, "seed": args.seed}
    if args.window:
        options["windows"] = args.window
    return options


def cmd_deployments_compare(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.challenger_comparison(args.table, store=args.store, **_comparison_options(args)), args)


def cmd_deployments_evaluate(args) -> int:
    with indb.connect(args.db) as db:
        evaluation = db.evaluate_challengers(args.table, dry_run=args.dry_run, **_comparison_options(args))
    print(json.dumps(evaluation.summary(), indent=2, default=str))
    if evaluation.switch is not None:
        _print_switch(evaluation.switch)
    return 0


def _add_promotion_commands(deployments, common, listing) -> None:
    verbs = deployments.add_subparsers(dest="verb", required=False, metavar="VERB")
    promote = verbs.add_parser("promote", parents=[common], help="make a version the champion (audited)")
    promote.add_argument("table")
    promote.add_argument("version", help="number or alias")
    promote.add_argument("--reason")
    promote.add_argument("--dry-run", action="store_true", help="print the switch, change nothing")
    promote.set_defaults(run=cmd_deployments_promote)
    rollback = verbs.add_parser("rollback", parents=[common], help="back to the previous champion")
    rollback.add_argument("table")
    rollback.add_argument("--to", metavar="VERSION", help="a version that was the champion before")
    rollback.add_argument("--reason")
    rollback.add_argument("--dry-run", action="store_true", help="print the switch, change nothing")
    rollback.set_defaults(run=cmd_deployments_rollback)
    for name, run, text in (
        ("compare", cmd_deployments_compare, "challengers against the champion on labeled rows"),
        ("evaluate", cmd_deployments_evaluate, "compare, store and apply the retraining policy"),
    ):
        verb = verbs.add_parser(name, parents=[listing if name == "compare" else common], help=text)
        verb.add_argument("table")
        verb.add_argument("--window", action="append", help="'all' or e.g. '7 days' (repeatable)")
        verb.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
        verb.add_argument("--seed", type=int, default=0)
        if name == "compare":
            verb.add_argument("--store", action="store_true", help="append to indb.challenger_comparisons")
        else:
            verb.add_argument("--dry-run", action="store_true", help="compare and decide, change nothing")
        verb.set_defaults(run=run)


# -- governance: lineage (issue 14.4) --------------------------------------------------------
def cmd_lineage(args) -> None:
    from indb.governance import lineage

    name, version = _name_at(args.model)
    with indb.connect(args.db) as db:
        found = db.lineage(name, version)
    print(json.dumps(found, indent=2, default=str) if args.json else lineage.render(found))


def cmd_reproduce(args) -> int:
    name, version = _name_at(args.model)
    with indb.connect(args.db) as db, _working("reproduce", args.model):
        result = db.reproduce(name, version)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        verdict = "reproduced" if result.matches else f"not reproduced ({result.changed})"
        print(f"{result.model}@{result.version}: {verdict}: {result.reason}")
    return 0 if result.matches else 1


def _add_lineage(commands, listing) -> None:
    found = commands.add_parser(
        "lineage", parents=[listing], help="a version's lineage as a tree (upstream and downstream)"
    )
    found.add_argument("model", metavar="NAME[@VERSION]")
    found.set_defaults(run=cmd_lineage)
    again = commands.add_parser(
        "reproduce",
        parents=[listing],
        help="refit a version from its lineage (exit 1 unless the hash matches)",
    )
    again.add_argument("model", metavar="NAME[@VERSION]")
    again.set_defaults(run=cmd_reproduce)


# -- stages and promotion requests (issue 14.1) ----------------------------------------------
def cmd_stages_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.stage_requests(args.name) if args.requests else db.stages(args.name), args)


def cmd_stages_request(args) -> None:
    with indb.connect(args.db) as db:
        request = db.request_promotion(
            args.name, args.version, args.stage, args.reason, as_user=args.as_user, deployment=args.deployment
        )
    switch = f" (then switches {args.deployment})" if args.deployment else ""
    print(f"stage request {request}: {args.name} version {args.version} to {args.stage}{switch}, open")


def cmd_stages_decide(args) -> None:
    with indb.connect(args.db) as db:
        decide = db.approve if args.verb == "approve" else db.reject
        status = decide(args.request, args.comment, as_user=args.as_user)
    print(f"stage request {args.request}: {status}")


def cmd_stages_policy(args) -> None:
    from indb.governance import stages

    with indb.connect(args.db) as db:
        if args.action == "set":
            checks = [stages.parse_check(text) for text in args.require_check or []]
            minimums = {}
            for check in [c for c in checks if isinstance(c, dict)]:
                minimums.update(check["min_metric"])
            checks = [c for c in checks if not isinstance(c, dict)] + (
                [{"min_metric": minimums}] if minimums else []
            )
            db.set_policy(args.name, args.approvals, args.approver_role, checks)
        found = db.stage_policy(args.name)
    if getattr(args, "json", False):
        print(json.dumps(found, indent=2, default=str))
        return
    role = found["approver_role"] or "indb's approver role"
    print(f"{found['model']}: {found['approvals']} distinct approver(s) of {role}, never the requester")
    for check in found["require_checks"] or []:
        if isinstance(check, dict):
            for metric, minimum in check["min_metric"].items():
                print(f"  check min_metric {metric} >= {minimum:g}")
        else:
            print(f"  check {check}")
    if not found["require_checks"]:
        print("  no checks")
    print(f"  ({found['source']}" + (f", set by {found['updated_by']})" if found.get("updated_by") else ")"))


def _add_stages(commands, listing, common) -> None:
    stages = commands.add_parser("stages", help="stages of model versions and the requests that move them")
    verbs = stages.add_subparsers(dest="verb", required=True, metavar="VERB")
    as_user = "who acts, on a single-user (DuckDB) database; PostgreSQL knows who logged in"
    show = verbs.add_parser("list", parents=[listing], help="each version's stage (--requests: the requests)")
    show.add_argument("name")
    show.add_argument("--requests", action="store_true", help="list the model's stage requests instead")
    show.set_defaults(run=cmd_stages_list)
    request = verbs.add_parser("request", parents=[common], help="ask for a version to move to a stage")
    request.add_argument("name")
    request.add_argument("version", type=int)
    request.add_argument("stage", choices=["none", "development", "staging", "production", "archived"])
    request.add_argument("--reason", default=None)
    request.add_argument("--as-user", default=None, help=as_user)
    request.add_argument(
        "--deployment", default=None, metavar="TABLE", help="(production) switch it once approved"
    )
    request.set_defaults(run=cmd_stages_request)
    policy = verbs.add_parser("policy", help="a model's approval policy: set or show")
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    setting = actions.add_parser(
        "set", parents=[listing], help="how many approvers of which role, and which checks (admins)"
    )
    setting.add_argument("name")
    setting.add_argument("--approvals", type=int, default=2, help="distinct approvers, never the requester")
    setting.add_argument("--approver-role", default=None, help="a role approvers are members of")
    setting.add_argument(
        "--require-check",
        action="append",
        metavar="CHECK",
        help="parity, no_open_drift_alert or min_metric:METRIC=NUMBER (repeat for several)",
    )
    setting.set_defaults(run=cmd_stages_policy)
    showing = actions.add_parser("show", parents=[listing], help="the model's policy")
    showing.add_argument("name")
    showing.set_defaults(run=cmd_stages_policy)
    for verb, what in (("approve", "approve a stage request"), ("reject", "reject a stage request")):
        decide = verbs.add_parser(verb, parents=[common], help=what)
        decide.add_argument("request", type=int)
        decide.add_argument("--comment", default=None)
        decide.add_argument("--as-user", default=None, help=as_user)
        decide.set_defaults(run=cmd_stages_decide)


# -- indb ui (issue 16) -------------------------------------------------------------------------
def cmd_ui(args) -> int:
    """Serve the dashboard until interrupted; refused beyond loopback without a token."""
    from indb import ui

    token = args.token or os.environ.get("INDB_UI_TOKEN") or None
    ui.check_binding(args.host, token)
    where = f"http://{args.host}:{args.port}{args.root_path.rstrip('/')}/"
    print(f"indb ui: serving {args.db or _default_url()} on {where}", file=sys.stderr, flush=True)
    ui.serve(
        args.db or _default_url(),
        host=args.host,
        port=args.port,
        token=token,
        root_path=args.root_path,
        actions=not args.read_only,
    )
    return 0


def _add_ui(commands, common) -> None:
    serve = commands.add_parser("ui", parents=[common], help="a web dashboard over the catalog")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument(
        "--token",
        default=None,
        help="every request must carry it (default $INDB_UI_TOKEN); required beyond loopback",
    )
    serve.add_argument(
        "--root-path", default="", metavar="PREFIX", help="path prefix a reverse proxy serves it under"
    )
    serve.add_argument("--read-only", action="store_true", help="no actions (alerts, jobs, approvals)")
    serve.set_defaults(run=cmd_ui)


# -- collaboration: owners, comments, descriptions and tags, search (issue 14.6) ----------------
_KIND_HELP = "model, feature_set, monitor or job"
_AS_USER_HELP = "who acts, on a single-user (DuckDB) database; PostgreSQL knows who logged in"


def cmd_owner(args) -> None:
    with indb.connect(args.db) as db:
        if args.verb == "list":
            _show(db.owners(args.kind, args.name), args)
            return
        if args.verb == "add":
            added = db.add_owner(args.kind, args.name, args.owner, as_user=args.as_user)
            done = "added" if added else "already an owner"
        else:
            db.remove_owner(args.kind, args.name, args.owner, as_user=args.as_user)
            done = "removed"
        owners = ", ".join(db.owners(args.kind, args.name).owner) or "none"
    print(f"{args.kind} {args.name}: {args.owner} {done}; owners: {owners}")


def cmd_comment(args) -> None:
    with indb.connect(args.db) as db:
        if args.text is None:
            _show(db.comments(args.kind, args.name), args)
            return
        number = db.comment(args.kind, args.name, args.text, version=args.version, as_user=args.as_user)
    print(f"comment {number} on {args.kind} {args.name}")


def cmd_describe(args) -> None:
    changes: dict = {}
    if args.description is not None:
        changes["description"] = args.description
    tags: dict = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise IndbError(f"--tag takes KEY=VALUE, got {item!r}")
        tags[key] = value
    tags.update({key: None for key in args.untag})
    if tags or args.replace_tags:
        changes["tags"] = tags
    with indb.connect(args.db) as db:
        if changes:
            found = db.describe(args.kind, args.name, replace_tags=args.replace_tags, **changes)
        else:
            found = db.catalog_object(args.kind, args.name)
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return
    print(f"{found['object_kind']} {found['object_name']}")
    print(f"  description: {found['description'] or ''}")
    print(f"  tags: {json.dumps(found['tags'])}")
    print(f"  owners: {found['owners'] or ''}")


def cmd_search(args) -> None:
    with indb.connect(args.db) as db:
        found = db.search(args.text)
    if not args.json:
        found = found.assign(tags=[json.dumps(t) if t else "" for t in found.tags])
    _show(found, args)


def _add_collaboration(commands, listing, common) -> None:
    owner = commands.add_parser("owner", help="owners (users, roles) of models, feature sets, monitors, jobs")
    verbs = owner.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, what in (("add", "make a user or role an owner"), ("remove", "remove an owner")):
        change = verbs.add_parser(verb, parents=[common], help=what)
        change.add_argument("kind", metavar="KIND", help=_KIND_HELP)
        change.add_argument("name")
        change.add_argument("owner")
        change.add_argument("--as-user", default=None, help=_AS_USER_HELP)
        change.set_defaults(run=cmd_owner)
    shown = verbs.add_parser("list", parents=[listing], help="an object's owners")
    shown.add_argument("kind", metavar="KIND", help=_KIND_HELP)
    shown.add_argument("name")
    shown.set_defaults(run=cmd_owner)

    comment = commands.add_parser("comment", parents=[listing], help="comment on an object (no TEXT: list)")
    comment.add_argument("kind", metavar="KIND", help=_KIND_HELP)
    comment.add_argument("name")
    comment.add_argument("text", nargs="?", default=None)
    comment.add_argument("--version", type=int, default=None, help="one version of a model or feature set")
    comment.add_argument("--as-user", default=None, help=_AS_USER_HELP)
    comment.set_defaults(run=cmd_comment)

    describe = commands.add_parser(
        "describe", parents=[listing], help="show or set an object's description and tags"
    )
    describe.add_argument("kind", metavar="KIND", help=_KIND_HELP)
    describe.add_argument("name")
    describe.add_argument("--description", default=None)
    describe.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    describe.add_argument("--untag", action="append", default=[], metavar="KEY", help="remove a tag")
    describe.add_argument("--replace-tags", action="store_true", help="the --tag values replace all tags")
    describe.set_defaults(run=cmd_describe)

    search = commands.add_parser(
        "search", parents=[listing], help="find objects by name, description, tags, owners, comments"
    )
    search.add_argument("text")
    search.set_defaults(run=cmd_search)


def cmd_explain(args) -> None:
    """One row's contributions, largest first, with the base and the raw output."""
    row = _json_option(args.row, "--row")
    if not isinstance(row, dict):
        raise IndbError("--row takes one JSON object of input values, e.g. '{\"income\": 52000}'")
    with indb.connect(args.db) as db:
        frame = db.explain(args.model, row, _version(args.version))
    base, output = float(frame.base.iloc[0]), float(frame.output.iloc[0])
    if args.json:
        contributions = [
            {"feature": f, "contribution": float(c)}
            for f, c in zip(frame.feature, frame.contribution, strict=True)
        ]
        found = {
            "model": frame.attrs["model"],
            "version": frame.attrs["version"],
            "output_kind": frame.attrs["output"],
            "exact": frame.attrs["exact"],
            "base": base,
            "output": output,
            "contributions": contributions,
        }
        if frame.error.notna().any():
            found["error"] = float(frame.error.iloc[0])
        print(json.dumps(found, indent=2))
        return
    exact = "exact" if frame.attrs["exact"] else f"approximate, error {frame.error.iloc[0]:.3g}"
    print(f"{frame.attrs['model']} version {frame.attrs['version']}: {frame.attrs['output']} ({exact})")
    width = max(len("base"), *(len(f) for f in frame.feature))
    print(f"  {'base':<{width}}  {base:+.6f}")
    for feature, contribution in zip(frame.feature, frame.contribution, strict=True):
        print(f"  {feature:<{width}}  {contribution:+.6f}")
    print(f"  {'= output':<{width}}  {output:+.6f}")


def _add_explain(commands, listing) -> None:
    explain = commands.add_parser(
        "explain", parents=[listing], help="each input's contribution to one row's prediction"
    )
    explain.add_argument("model")
    explain.add_argument("--row", required=True, metavar="JSON", help="e.g. '{\"income\": 52000, ...}'")
    explain.add_argument("--version", dest="version", default=None, help="number or alias")
    explain.set_defaults(run=cmd_explain)


def build_parser() -> argparse.ArgumentParser:
    db_help = "database URL (default: $INDB_URL, else the DuckDB file ./indb.duckdb)"
    # --db works before or after the command; SUPPRESS keeps a sub-command from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=db_help)
    listing = argparse.ArgumentParser(add_help=False, parents=[common])
    listing.add_argument("--json", action="store_true", help="print the rows as a JSON array")
    parser = argparse.ArgumentParser(prog="indb", description="Machine learning inside the database.")
    parser.add_argument("--db", metavar="URL", default=None, help=db_help)
    parser.add_argument("--version", action="version", version=f"indb {indb.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", parents=[common], help="run the whole loop on sample data")
    demo.add_argument("--rows", type=int, default=30_000, help="loan applications to generate")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(run=cmd_demo)

    models = commands.add_parser("models", help="list and inspect registered models")
    verbs = models.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", parents=[listing], help="all models").set_defaults(run=cmd_models_list)
    _add_leaderboard(verbs, listing)
    register = verbs.add_parser("register", parents=[common], help="register an ONNX file as a new version")
    register.add_argument("name")
    register.add_argument("--onnx", required=True, metavar="FILE", help="the model as ONNX")
    register.add_argument(
        "--sample",
        required=True,
        metavar="FILE",
        help="model inputs (.csv or .parquet): its columns become the SQL arguments, in order, "
        "and the model is checked on its rows",
    )
    register.add_argument("--metrics", metavar="JSON", help="e.g. '{\"auc\": 0.94}'")
    register.add_argument("--tags", metavar="JSON", help='e.g. \'{"team": "credit"}\'')
    register.add_argument("--description")
    register.set_defaults(run=cmd_models_register)
    show = verbs.add_parser("show", parents=[listing], help="versions of one model")
    show.add_argument("name")
    show.add_argument("--version", dest="version", default=None, help="number or alias")
    show.set_defaults(run=cmd_models_show)
    alias = verbs.add_parser("alias", parents=[common], help="point an alias at a version")
    alias.add_argument("name")
    alias.add_argument("alias", help="e.g. production or staging")
    alias.add_argument("version")
    alias.set_defaults(run=cmd_models_alias)
    tag = verbs.add_parser("tag", parents=[common], help="add, change or remove a version's tags")
    tag.add_argument("name")
    tag.add_argument("tags", nargs="*", metavar="KEY=VALUE")
    tag.add_argument("--remove", action="append", default=[], metavar="KEY", help="drop this tag")
    tag.add_argument("--replace", action="store_true", help="replace all tags instead of merging")
    tag.add_argument("--version", dest="version", default=None, help="number or alias (default: default)")
    tag.set_defaults(run=cmd_models_tag)
    describe = verbs.add_parser("describe", parents=[common], help="set a model's or version's description")
    describe.add_argument("name")
    describe.add_argument("description")
    describe.add_argument("--version", dest="version", default=None, help="a version instead of the model")
    describe.set_defaults(run=cmd_models_describe)

    compiled = verbs.add_parser("sql", parents=[common], help="the model compiled to SQL")
    compiled.add_argument("name")
    compiled.add_argument("--version", dest="version", default=None, help="number or alias")
    compiled.add_argument(
        "--dialect", default=None, help="duckdb, postgres, spark, ... (default: the database's)"
    )
    compiled.set_defaults(run=cmd_models_sql)
    _add_model_files(commands, verbs, common, listing)
    _add_model_doc(verbs, common)

    deploy = commands.add_parser("deploy", parents=[common], help="score every insert into a table")
    deploy.add_argument("model")
    deploy.add_argument("--table", required=True)
    deploy.add_argument("--version", dest="version", default=None, help="number or alias")
    deploy.add_argument(
        "--mode",
        choices=["bulk", "row"],
        default="bulk",
        help="bulk: score each INSERT at once (default); row: write the prediction "
        "into the row, for INSERT ... RETURNING (PostgreSQL)",
    )
    deploy.add_argument(
        "--runtime",
        choices=["auto", "sql", "onnx"],
        default="auto",
        help="sql: the model compiled to SQL; onnx: onnxruntime in the database; "
        "auto (default): sql when it compiles, verifies and is small, else onnx",
    )
    deploy.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    deploy.add_argument(
        "--explain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write <table>_explanations (each input's contribution) with every prediction; "
        "--no-explain stops it (default: as the deployment does)",
    )
    deploy.add_argument(
        "--features-from",
        action="append",
        metavar="SET",
        help="look up the model inputs named like this feature set's features by entity key",
    )
    deploy.set_defaults(run=cmd_deploy)

    insert = commands.add_parser(
        "insert", parents=[common], help="insert rows into a table (a deployed one scores them)"
    )
    insert.add_argument("table")
    insert.add_argument(
        "source",
        help="a .csv or .parquet file, a table or view name, or a SELECT query; columns matched by name",
    )
    insert.set_defaults(run=cmd_insert)

    undeploy = commands.add_parser("undeploy", parents=[common], help="stop scoring inserts into a table")
    undeploy.add_argument("table")
    undeploy.add_argument(
        "--drop-tables",
        action="store_true",
        help="also drop the request table, its predictions, ground truth and view",
    )
    undeploy.set_defaults(run=cmd_undeploy)

    features = commands.add_parser("features", help="feature sets and training sets")
    verbs = features.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", parents=[listing], help="feature sets and versions").set_defaults(
        run=cmd_features_list
    )
    ingest = verbs.add_parser("ingest", parents=[common], help="append rows from a table or query")
    ingest.add_argument("feature_set")
    ingest.add_argument("source", help="a table or view name, or a SELECT query")
    ingest.add_argument("--statistics", action="store_true", help="recompute its statistics")
    ingest.set_defaults(run=cmd_features_ingest)
    stats = verbs.add_parser("stats", parents=[listing], help="compute and show feature statistics")
    stats.add_argument("feature_set")
    stats.add_argument("--version", dest="version", type=int, default=None)
    stats.set_defaults(run=cmd_features_stats)
    training = verbs.add_parser(
        "training-set", parents=[listing], help="point-in-time join of a spine to features"
    )
    training.add_argument("spine", help="a table or view name, or a SELECT query")
    training.add_argument("features", nargs="+", help="set:feature, set:*, set@2:feature")
    training.add_argument("--event-time", default="event_time", help="the spine's time column")
    training.add_argument("--label", default=None)
    training.add_argument("--ttl", type=float, default=None, help="seconds")
    training.add_argument("--name", default=None, help="materialize as ts_<name>_v<N>")
    training.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    training.set_defaults(run=cmd_training_set)

    audit_log = commands.add_parser("audit", help="the audit log")
    audit_verbs = audit_log.add_subparsers(dest="verb", required=True, metavar="VERB")
    audit_verbs.add_parser(
        "verify", parents=[common], help="check the audit log's hash chain (exit 2 on a break)"
    ).set_defaults(run=cmd_audit_verify)

    doctor = commands.add_parser("doctor", parents=[listing], help="check the database and server setup")
    doctor.set_defaults(run=cmd_doctor)

    deployments = commands.add_parser("deployments", parents=[listing], help="list deployments")
    deployments.set_defaults(run=cmd_deployments)
    _add_promotion_commands(deployments, common, listing)

    challengers = commands.add_parser(
        "challengers",
        parents=[listing],
        help="a deployment's challengers: other versions scored in the same insert (shadow or split)",
    )
    challengers.add_argument("table", help="the deployed request table")
    change = challengers.add_mutually_exclusive_group()
    change.add_argument("--add", type=int, metavar="VERSION", help="add this version as a challenger")
    change.add_argument("--remove", type=int, metavar="VERSION", help="stop scoring with this version")
    challengers.add_argument("--mode", choices=["shadow", "split"], default="shadow")
    challengers.add_argument("--weight", type=float, default=0.1, help="split: the share of request ids")
    challengers.add_argument("--runtime", choices=["auto", "sql", "onnx"], default="auto")
    challengers.add_argument("--dry-run", action="store_true", help="print the statements only")
    challengers.set_defaults(run=cmd_challengers)

    monitor = commands.add_parser("monitor", help="run monitors, read their results, write reports")
    verbs = monitor.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", parents=[listing], help="all monitors").set_defaults(run=cmd_monitor_list)
    create = verbs.add_parser("create", parents=[common], help="watch a deployment for drift and accuracy")
    create.add_argument("name")
    create.add_argument("deployment", help="the deployed request table")
    create.add_argument(
        "--reference-window",
        nargs=2,
        metavar=("START", "END"),
        help="the deployment's rows in this time window",
    )
    create.add_argument("--reference-query", metavar="SQL", help="a SELECT giving the reference rows")
    create.add_argument("--reference-training-set", metavar="NAME", help="a materialized training set")
    create.add_argument("--window", default="1 day", help='e.g. "1 day", "6 hours" (default: 1 day)')
    create.add_argument(
        "--feature", action="append", help="a column to watch (repeat; default: the inputs and prediction)"
    )
    create.add_argument(
        "--thresholds", metavar="JSON", help='e.g. \'{"psi": 0.3, "income": {"wasserstein": 0.2}}\''
    )
    create.add_argument("--mode", choices=["exact", "binned"], default="exact")
    create.add_argument(
        "--protected", action="append", help="fairness per group of this column (repeat; with --favorable)"
    )
    create.add_argument("--favorable", metavar="CLASS", help="the favorable predicted class, for --protected")
    create.add_argument(
        "--importance", action="store_true", help="global importance and attribution drift (explain=True)"
    )
    create.set_defaults(run=cmd_monitor_create)
    run = verbs.add_parser("run", parents=[common], help="compute the windows since the last run")
    run.add_argument("name")
    run.set_defaults(run=cmd_monitor_run)
    results = verbs.add_parser("results", parents=[listing], help="results (or --alerts) of a monitor")
    results.add_argument("name")
    results.add_argument("--alerts", action="store_true", help="show its alerts instead")
    results.set_defaults(run=cmd_monitor_results)
    alerts = verbs.add_parser(
        "alerts", parents=[common], help="open alerts of a monitor; --acknowledge/--resolve ID"
    )
    alerts.add_argument("name")
    alerts.add_argument("--all", action="store_true", help="resolved alerts too")
    acting = alerts.add_mutually_exclusive_group()
    acting.add_argument("--resolve", type=int, metavar="ID", help="resolve alert ID")
    acting.add_argument("--acknowledge", type=int, metavar="ID", help="acknowledge alert ID")
    alerts.add_argument("--note", help="a note stored with the alert")
    alerts.set_defaults(run=cmd_monitor_alerts)
    report = verbs.add_parser("report", parents=[common], help="a self-contained HTML report")
    report.add_argument("name")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.set_defaults(run=cmd_monitor_report)

    transforms = commands.add_parser("transforms", help="feature-engineering pipelines compiled to SQL views")
    verbs = transforms.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", parents=[listing], help="all transforms").set_defaults(run=cmd_transforms_list)
    register = verbs.add_parser("register", parents=[common], help="register an ONNX transform")
    register.add_argument("name")
    register.add_argument("--onnx", required=True, metavar="FILE", help="one numeric output tensor")
    register.add_argument("--sample", required=True, metavar="FILE", help="inputs (.csv or .parquet)")
    register.add_argument("--source", metavar="TABLE", help="create the view NAME over this table")
    register.set_defaults(run=cmd_transforms_register)
    drop = verbs.add_parser("drop", parents=[common], help="remove a transform, its view and function")
    drop.add_argument("name")
    drop.set_defaults(run=cmd_transforms_drop)

    jobs = commands.add_parser("jobs", help="scheduled jobs: add, list, run, history")
    verbs = jobs.add_subparsers(dest="verb", required=True, metavar="VERB")
    add = verbs.add_parser("add", parents=[common], help="schedule an action")
    add.add_argument("name")
    add.add_argument("--schedule", help='cron ("*/15 * * * *"), @hourly, @daily, ... or "15 minutes"')
    add.add_argument("--action", required=True, help="run_monitor, ingest, retain, sql, ...")
    add.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="an argument of the action (repeat)"
    )
    add.add_argument("--args-json", metavar="JSON", help="the action's arguments as one JSON object")
    add.add_argument("--timezone", default="UTC", help="the schedule's time zone (default UTC)")
    add.add_argument(
        "--on-alert", metavar="monitor=NAME[,metric=NAME]", help="also run after a matching alert"
    )
    add.add_argument("--retries", type=int, default=0)
    add.add_argument("--retry-delay", type=float, default=60, metavar="SECONDS")
    add.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    add.add_argument("--alert-after-failures", type=int, default=3, metavar="N")
    add.add_argument(
        "--catch-up",
        choices=["latest", "all", "none"],
        default="latest",
        help="runs missed while no scheduler ran",
    )
    add.add_argument("--comment")
    add.add_argument("--disabled", action="store_true", help="create it disabled")
    add.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    add.set_defaults(run=cmd_jobs_add)
    verbs.add_parser("list", parents=[listing], help="jobs with their last run and next run").set_defaults(
        run=cmd_jobs_list
    )
    show = verbs.add_parser("show", parents=[listing], help="one job and its latest runs")
    show.add_argument("name")
    show.add_argument("--limit", type=int, default=10)
    show.set_defaults(run=cmd_jobs_show)
    run = verbs.add_parser("run", parents=[listing], help="run a job now (exit 1 unless it succeeds)")
    run.add_argument("name")
    run.set_defaults(run=cmd_jobs_run)
    history = verbs.add_parser("history", parents=[listing], help="runs, newest first")
    history.add_argument("name", nargs="?")
    history.add_argument("--limit", type=int, default=50)
    history.set_defaults(run=cmd_jobs_history)
    for verb, enabled in (("enable", True), ("disable", False)):
        toggle = verbs.add_parser(verb, parents=[common], help=f"{verb} a job")
        toggle.add_argument("name")
        toggle.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
        toggle.set_defaults(run=cmd_jobs_enable, enabled=enabled)
    remove = verbs.add_parser("remove", parents=[common], help="remove a job (its runs stay)")
    remove.add_argument("name")
    remove.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    remove.set_defaults(run=cmd_jobs_remove)
    verbs.add_parser(
        "run-due", parents=[listing], help="run what is due once and exit (system cron, CI)"
    ).set_defaults(run=cmd_jobs_run_due)

    scheduler = commands.add_parser(
        "scheduler", parents=[common], help="run due jobs until SIGTERM (systemd, docker; DuckDB)"
    )
    scheduler.add_argument(
        "--poll", type=float, default=30.0, metavar="SECONDS", help="longest sleep between passes"
    )
    scheduler.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long a run may still take",
    )
    scheduler.set_defaults(run=cmd_scheduler)

    _add_retrain(commands, listing)
    _add_explain(commands, listing)
    _add_lineage(commands, listing)
    _add_stages(commands, listing, common)
    _add_collaboration(commands, listing, common)

    _add_ui(commands, common)

    sql = commands.add_parser("sql", parents=[listing], help="run one SQL statement")
    sql.add_argument("query")
    sql.set_defaults(run=cmd_sql)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except IndbError as e:
        print(f"indb: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``indb`` command: demo, models, deploy, features, sql. ``--db URL`` picks the database."""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

import indb
from indb.errors import IndbError


def _show(frame: pd.DataFrame | None) -> None:
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


def cmd_demo(args) -> None:
    from indb.demo import run_demo

    run_demo(args.db, rows=args.rows, seed=args.seed)


def cmd_models_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.models())


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
        for mv in versions:
            stages = [a for a, v in aliases.itertuples(index=False) if v == mv.version]
            print(f"{mv.name} version {mv.version}" + (f"  [{', '.join(stages)}]" if stages else ""))
            print(f"  sha256     {mv.sha256} (verified)")
            print(f"  task       {mv.task}" + (f", classes {list(mv.classes)}" if mv.classes else ""))
            print(f"  call       {mv.signature.describe(f'predict_{mv.name}_v{mv.version}')}")
            estimator = (mv.recipe.get("estimator") or {}).get("estimator", "ONNX bytes")
            print(f"  estimator  {estimator}")
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


def cmd_models_sql(args) -> None:
    with indb.connect(args.db) as db:
        print(db.compile_sql(args.name, _version(args.version), dialect=args.dialect))


def cmd_deploy(args) -> None:
    with indb.connect(args.db) as db:
        deployment = db.deploy(
            args.model,
            table=args.table,
            version=_version(args.version),
            mode=args.mode,
            runtime=args.runtime,
            dry_run=args.dry_run,
            features_from=args.features_from,
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


def cmd_features_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.feature_sets())


def cmd_features_ingest(args) -> None:
    with indb.connect(args.db) as db:
        rows = db.ingest(args.feature_set, args.source, statistics=args.statistics)
        print(f"{rows:,} rows loaded into feature set {args.feature_set}")


def cmd_features_stats(args) -> None:
    with indb.connect(args.db) as db:
        columns = ["feature", "kind", "count", "nulls", "distinct_count", "min", "max", "mean", "stddev"]
        _show(db.feature_statistics(args.feature_set, args.version)[columns])


def cmd_training_set(args) -> None:
    with indb.connect(args.db) as db:
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
            _show(ts.frame)


def cmd_deployments(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.deployments())


def cmd_sql(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.sql(args.query))


def cmd_audit_verify(args) -> int:
    """Recompute the audit log's hash chain; non-zero exit on a break."""
    from indb import audit

    with indb.connect(args.db) as db:
        result = db._call(audit.verify)
    print(result)
    return 0 if result.ok else 2


def cmd_doctor(args) -> int:
    from indb.backends import open_backend

    backend = open_backend(args.db)
    try:
        checks = backend.health()
    finally:
        backend.close()
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FIX '} {check.name:<14} {check.detail}")
        if not check.ok and check.fix:
            print(f"     {'':<14} -> {check.fix}")
    missing = [c.name for c in checks if not c.ok]
    print("\nall good" if not missing else f"\nto fix: {', '.join(missing)}")
    return 1 if missing else 0


def cmd_monitor_run(args) -> None:
    with indb.connect(args.db) as db:
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
        _show(frame)


def cmd_monitor_list(args) -> None:
    with indb.connect(args.db) as db:
        _show(db.monitors())


def build_parser() -> argparse.ArgumentParser:
    db_help = "database URL (default: $INDB_URL, else the DuckDB file ./indb.duckdb)"
    # --db works before or after the command; SUPPRESS keeps a sub-command from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=db_help)
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
    verbs.add_parser("list", parents=[common], help="all models").set_defaults(run=cmd_models_list)
    show = verbs.add_parser("show", parents=[common], help="versions of one model")
    show.add_argument("name")
    show.add_argument("--version", dest="version", default=None, help="number or alias")
    show.set_defaults(run=cmd_models_show)
    alias = verbs.add_parser("alias", parents=[common], help="point an alias at a version")
    alias.add_argument("name")
    alias.add_argument("alias", help="e.g. production or staging")
    alias.add_argument("version")
    alias.set_defaults(run=cmd_models_alias)

    compiled = verbs.add_parser("sql", parents=[common], help="the model compiled to SQL")
    compiled.add_argument("name")
    compiled.add_argument("--version", dest="version", default=None, help="number or alias")
    compiled.add_argument(
        "--dialect", default=None, help="duckdb, postgres, spark, ... (default: the database's)"
    )
    compiled.set_defaults(run=cmd_models_sql)

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
        "--features-from",
        action="append",
        metavar="SET",
        help="look up the model inputs named like this feature set's features by entity key",
    )
    deploy.set_defaults(run=cmd_deploy)

    features = commands.add_parser("features", help="feature sets and training sets")
    verbs = features.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", parents=[common], help="feature sets and versions").set_defaults(
        run=cmd_features_list
    )
    ingest = verbs.add_parser("ingest", parents=[common], help="append rows from a table or query")
    ingest.add_argument("feature_set")
    ingest.add_argument("source", help="a table or view name, or a SELECT query")
    ingest.add_argument("--statistics", action="store_true", help="recompute its statistics")
    ingest.set_defaults(run=cmd_features_ingest)
    stats = verbs.add_parser("stats", parents=[common], help="compute and show feature statistics")
    stats.add_argument("feature_set")
    stats.add_argument("--version", dest="version", type=int, default=None)
    stats.set_defaults(run=cmd_features_stats)
    training = verbs.add_parser(
        "training-set", parents=[common], help="point-in-time join of a spine to features"
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

    doctor = commands.add_parser("doctor", parents=[common], help="check the database and server setup")
    doctor.set_defaults(run=cmd_doctor)

    deployments = commands.add_parser("deployments", parents=[common], help="list deployments")
    deployments.set_defaults(run=cmd_deployments)

    monitor = commands.add_parser("monitor", help="run monitors, read their results, write reports")
    verbs = monitor.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", parents=[common], help="all monitors").set_defaults(run=cmd_monitor_list)
    run = verbs.add_parser("run", parents=[common], help="compute the windows since the last run")
    run.add_argument("name")
    run.set_defaults(run=cmd_monitor_run)
    results = verbs.add_parser("results", parents=[common], help="results (or --alerts) of a monitor")
    results.add_argument("name")
    results.add_argument("--alerts", action="store_true", help="show its alerts instead")
    results.set_defaults(run=cmd_monitor_results)
    report = verbs.add_parser("report", parents=[common], help="a self-contained HTML report")
    report.add_argument("name")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.set_defaults(run=cmd_monitor_report)

    sql = commands.add_parser("sql", parents=[common], help="run one SQL statement")
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

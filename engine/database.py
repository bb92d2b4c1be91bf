"""``Database``: the public Python face of indb over one backend connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from indb import catalog, deployments, inserts, registry
from indb.backends.base import Backend
from indb.deployments import Deployment
from indb.errors import DatabaseError, InvalidNameError, ModelError, QueryError
from indb.registry import ModelVersion
from indb.sql import statement


def sql_dialect(name: str) -> str:
    """A sqlglot dialect name (``duckdb``, ``postgres``, ``spark``, ...), or an error listing them."""
    from sqlglot.dialects.dialect import Dialects

    known = sorted(d.value for d in Dialects if d.value)
    wanted = str(name).strip().lower()
    wanted = {"postgresql": "postgres"}.get(wanted, wanted)
    if wanted not in known:
        raise InvalidNameError(f"unknown SQL dialect {name!r}: use one of {', '.join(known)}")
    return wanted


def _on_backend(function):
    """A ``Database`` method calling ``function(self.backend, ...)``: its name, docstring and
    signature (less the backend) come from the function, so the two never drift apart."""
    import functools
    import inspect

    @functools.wraps(function)
    def method(self, *args, **kwargs):
        return self._call(function, *args, **kwargs)

    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    itself = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(parameters=[itself, *parameters[1:]])
    return method


class Database:
    """A connection with indb's catalog: register models, deploy them, run SQL."""

    def __init__(self, backend: Backend):
        self.backend = backend
        try:
            self.schema_version = catalog.ensure(backend)
            registry.install_all(backend)
            self._install_explainers()
        except Exception as e:
            backend.close()
            raise backend.translate(e) from None

    def __repr__(self) -> str:
        return f"<indb.Database {self.backend.url}>"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.backend.url

    def close(self) -> None:
        self.stop_scheduler()
        self.backend.close()

    def _call(self, function, *args, **kwargs):
        try:
            return function(self.backend, *args, **kwargs)
        except Exception as e:
            raise self.backend.translate(e) from None

    # -- SQL ------------------------------------------------------------------------------------
    def sql(self, text: str, params: dict | Sequence | None = None) -> pd.DataFrame | None:
        """Run SQL with bound parameters; rows come back as a DataFrame, else None."""
        if not isinstance(text, str):
            raise QueryError(f"SQL text must be a string, not {type(text).__name__}")
        if not text.strip():
            raise QueryError("the SQL text is empty: give at least one statement")
        try:
            return self.backend.run_user_sql(text, params)
        except Exception as e:
            error = self.backend.translate(e)
            if isinstance(error, DatabaseError):
                error = DatabaseError(str(error) + self._expected_columns_hint(text))
            raise error from None

    def _expected_columns_hint(self, text: str) -> str:
        """For a failed INSERT into a deployed table, what the table expects."""
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(text, dialect=self.backend.dialect)
        except Exception:
            return ""
        if not isinstance(tree, exp.Insert):
            return ""
        table = tree.find(exp.Table)
        if table is None:
            return ""
        found = self.backend.rows(
            statement("deployments", "get_deployment", self.backend.dialect),
            {"table_name": table.name},
        )
        columns = self.backend.table_columns(table.name) if found else None
        if not columns:
            return ""
        shown = ", ".join(f"{c} {t}" for c, t in columns.items() if c not in ("id", "created_at"))
        return f"\n(table {table.name!r} is scored by model {found[0][1]!r}; it takes: {shown})"

    # -- models ---------------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        model: Any,
        *,
        sample: pd.DataFrame,
        metrics: dict | None = None,
        tags: dict | None = None,
        description: str | None = None,
        training_set: Any = None,
        allow_nan: bool = False,
    ) -> ModelVersion:
        """Store a fitted scikit-learn model (converted to ONNX) or ONNX bytes as a new version.

        ``sample`` is a DataFrame of model inputs: its columns become the SQL arguments of
        ``predict_<name>`` (in order) and the conversion is checked against it.
        ``training_set`` (a materialized training set, its name, or (name, version)) is
        recorded as the version's lineage (``indb.model_lineage``).
        NaN and +-inf in numeric inputs are refused when scoring, like NULL, unless
        ``allow_nan=True`` (the model expects them, e.g. it starts with an imputer).
        """
        if hasattr(model, "transform") and hasattr(model, "fit") and not hasattr(model, "predict"):
            raise ModelError(
                f"{type(model).__name__} has no final estimator (no predict): register a "
                "feature-engineering pipeline with db.register_transform(name, pipeline, sample=...)"
            )
        return self._call(
            registry.register,
            name,
            model,
            sample=sample,
            metrics=metrics,
            tags=tags,
            description=description,
            training_set=training_set,
            allow_nan=allow_nan,
        )

    def register_transform(
        self, name: str, pipeline: Any, *, sample: pd.DataFrame, source: str | None = None
    ):
        """Store a fitted pipeline without a final estimator (imputers, scalers, encoders) as a
        transformation compiled to SQL. Checked like a model: ONNX against scikit-learn's
        ``transform`` on ``sample``, then the compiled SQL in the database against it too.
        With ``source`` (a table or view), the view ``<name>`` shows that table's other columns
        followed by one column per output, and can be a feature set's source."""
        from indb import transforms

        return self._call(transforms.register, name, pipeline, sample=sample, source=source)

    def transform(self, name: str):
        from indb import transforms

        return self._call(transforms.get, name)

    def drop_transform(self, name: str) -> None:
        """Remove a transform's view, its ``transform_<name>`` function and its catalog row."""
        from indb import transforms

        self._call(transforms.drop, name)

    def transforms(self) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("transforms", "list_transforms", b.dialect)))

    def models(self) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("registry", "list_models", b.dialect)))

    def model_versions(self, name: str) -> list[ModelVersion]:
        return self._call(registry.versions, name)

    def get_model(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version with its ONNX bytes (sha256-checked); None means the default version."""
        return self._call(registry.get, name, version)

    def compile_sql(self, name: str, version: int | str | None = None, dialect: str | None = None) -> str:
        """The SQL expressions of a version's compiled form, for ``dialect`` (default: this
        database's), one per output: ``prediction`` then ``probability_<class>``."""
        from indb import compiled, deployments

        if dialect is not None:
            dialect = sql_dialect(dialect)

        def build(backend):
            mv = registry.get(backend, name, version)
            return compiled.named(mv, render, backend, mv, compiled.compile_version(mv))

        def render(backend, mv, model):
            target = dialect or backend.dialect
            lines = [f"-- {mv.name} version {mv.version}: {mv.describe()}"]
            helpers = None
            if target == backend.dialect:
                helpers = backend.compiled_helpers(mv.ref)
                created = backend.compiled_helper_sql(model, helpers)
                if created:
                    lines += ["-- functions that compute shared sub-expressions once per row", *created]
            lines += ["-- prediction", model.prediction_sql(target, helpers)]
            if model.probabilities:
                columns = ", ".join(deployments.probability_columns(mv.classes)[: len(model.probabilities)])
                lines += [f"-- probabilities (array of {columns})"]
                lines += [model.probabilities_array_sql(target, helpers)]
            return "\n".join(lines)

        try:
            return self._call(build)
        except compiled.UnsupportedOperator as e:
            raise ModelError(str(e)) from None

    def set_alias(self, name: str, alias: str, version: int | str) -> int:
        return self._call(registry.set_alias, name, alias, version)

    def remove_alias(self, name: str, alias: str) -> None:
        return self._call(registry.remove_alias, name, alias)

    def update_model(
        self,
        name: str,
        version: int | str | None = None,
        *,
        tags: dict | None = registry._UNSET,
        description: str | None = registry._UNSET,
        replace_tags: bool = False,
    ) -> ModelVersion:
        """Edit tags and/or descriptions after registration (one audited change).

        ``tags`` are merged into the version's tags (None as a value removes that tag;
        ``replace_tags=True`` replaces them all). ``version``: a number, an alias, or None
        for the default version. ``description`` goes to that version when ``version`` is
        given, else to the model itself (``indb.models``)."""
        return self._call(
            registry.update, name, version, tags=tags, description=description, replace_tags=replace_tags
        )

    def set_tags(
        self, name: str, tags: dict, version: int | str | None = None, *, replace: bool = False
    ) -> ModelVersion:
        """Merge ``tags`` into a version's tags (None removes a tag; ``replace`` replaces all)."""
        return self.update_model(name, version, tags=tags, replace_tags=replace)

    def set_description(self, name: str, description: str | None, version: int | str | None = None) -> None:
        """The model's description, or with ``version`` that version's."""
        self.update_model(name, version, description=description)

    # -- deployments ----------------------------------------------------------------------------
    def deploy(
        self,
        model: str,
        *,
        table: str,
        version: int | str | None = None,
        runtime: str = "auto",
        mode: str = "bulk",
        dry_run: bool = False,
        features_from: str | list[str] | None = None,
        explain: bool | None = None,
    ) -> Deployment:
        """Score every insert into ``table`` with a model version.

        ``mode="bulk"`` scores each INSERT statement at once into ``<table>_predictions``;
        ``mode="row"`` (PostgreSQL) writes the prediction into the inserted row itself, so
        ``INSERT ... RETURNING prediction`` returns it. ``dry_run`` only returns the SQL.
        ``features_from`` (a feature set, ``"set@2"``, or a list): model inputs named like its
        features are looked up in the latest stored values by entity key, so the request table
        holds the keys and the other inputs only; each prediction row records the values used.
        ``explain=True`` also writes ``<table>_explanations`` (see :meth:`explain`); None keeps
        what the deployment does.
        """
        return self._call(
            deployments.deploy,
            model,
            table=table,
            version=version,
            runtime=runtime,
            mode=mode,
            dry_run=dry_run,
            features_from=features_from,
            explain=explain,
        )

    def undeploy(self, table: str, *, drop_tables: bool = False) -> list[str]:
        """Stop scoring ``table``; ``drop_tables`` also drops its predictions, ground truth
        and view. Returns the statements run."""
        return self._call(deployments.undeploy, table, drop_tables=drop_tables)

    def write_table(self, name: str, frame: pd.DataFrame, *, replace: bool = False) -> None:
        """Load a DataFrame into a table: create or replace it, or append by column name."""
        from indb import identifiers

        identifiers.table_name(name)

        def write(backend):
            # Appending to a table that is not there creates it (the driver's own message for
            # INSERT into a missing table suggested a catalog table instead).
            create = replace or backend.table_columns(name) is None
            backend.write_table(name, frame, replace=create)

        self._call(write)

    def deployment(self, table: str) -> Deployment:
        return self._call(deployments.get, table)

    insert = _on_backend(inserts.insert)

    # -- feature store --------------------------------------------------------------------------
    def create_entity(self, name: str, keys: list[str], *, description: str | None = None) -> dict:
        """What features describe, e.g. ``create_entity("customer", keys=["customer_id"])``."""
        from indb.feature_store import sets

        return self._call(sets.create_entity, name, keys, description)

    def create_feature_set(
        self,
        name: str,
        entity: str,
        *,
        source: Any = None,
        columns: dict[str, str] | None = None,
        event_time: str = "event_time",
        created_time: str | None = None,
        ttl: Any = None,
        features: list[str] | None = None,
        description: str | None = None,
        descriptions: dict[str, str] | None = None,
        statistics: bool = True,
    ):
        """Register a feature set version from ``source`` (DataFrame, Arrow table, table or view
        name, or SELECT query; its rows are loaded) or from ``columns`` (name -> SQL type).
        Columns other than the entity keys and times are features (or those in ``features``).
        A changed schema makes a new version; ``ttl`` (seconds or timedelta) bounds how old a
        value a training set may take."""
        from indb.feature_store import sets

        return self._call(
            sets.create,
            name,
            entity,
            source=source,
            columns=columns,
            event_time=event_time,
            created_time=created_time,
            ttl=ttl,
            features=features,
            description=description,
            descriptions=descriptions,
            statistics=statistics,
        )

    def feature_set(self, name: str, version: int | None = None):
        from indb.feature_store import sets

        return self._call(sets.get, name, version)

    def feature_sets(self) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("feature_store", "list_feature_sets", b.dialect)))

    def ingest(
        self, feature_set: str, data: Any, *, version: int | None = None, statistics: bool = False
    ) -> int:
        """Append rows (DataFrame, Arrow table, table or view name, or query) to a feature set,
        atomically; its latest values follow. Returns the rows loaded."""
        from indb.feature_store import sets

        return self._call(sets.ingest, feature_set, data, version=version, statistics=statistics)

    def training_set(
        self,
        spine: Any,
        features: list[str],
        *,
        event_time: str = "event_time",
        label: str | None = None,
        ttl: Any = None,
        materialize: bool = False,
        name: str | None = None,
        description: str | None = None,
        cutoff: Any = None,
        dry_run: bool = False,
        statistics: bool = True,
        filter_by_created_time: bool = True,
    ):
        """Join each spine row (keys, ``event_time``, usually a label) to the latest feature
        values known at its time: exactly one row per spine row, in spine order. Features are
        ``"set:feature"``, ``"set:*"``, ``"set@2:feature"`` or ``"set:feature AS name"``.
        ``materialize=True`` stores it as table ``ts_<name>_v<N>`` with its lineage;
        ``dry_run`` returns the SQL only (``.sql``, ``.params``). ``filter_by_created_time``:
        a row counts only once created by the spine's time (False: Feast's default, a later
        created backfill wins)."""
        from indb.feature_store import training

        return self._call(
            training.training_set,
            spine,
            features,
            event_time=event_time,
            label=label,
            ttl=ttl,
            materialize=materialize,
            name=name,
            description=description,
            cutoff=cutoff,
            dry_run=dry_run,
            statistics=statistics,
            filter_by_created_time=filter_by_created_time,
        )

    def get_training_set(self, name: str, version: int | None = None):
        from indb.feature_store import training

        return self._call(training.get, name, version)

    def rebuild_training_set(self, name: str, version: int | None = None, *, cutoff: Any = None):
        """A new version from a stored definition, with spine rows up to ``cutoff``."""
        from indb.feature_store import training

        return self._call(training.rebuild, name, version, cutoff=cutoff)

    def online_features(self, features: list[str], entities: Any, *, as_dict: bool = False):
        """The latest stored values of ``features`` for ``entities`` (a dict of keys, a list of
        them or a DataFrame), one row per entity in the order given; ``as_dict``: dicts instead
        of a DataFrame (one dict for one entity given as a dict)."""
        from indb.feature_store import online

        return self._call(online.online_features, features, entities, as_dict=as_dict)

    def materialize_online(self, feature_set: str, version: int | None = None) -> int:
        """Rebuild a feature set's latest-values table from its history."""
        from indb.feature_store import online

        return self._call(online.materialize, feature_set, version)

    def feature_statistics(self, feature_set: str, version: int | None = None) -> pd.DataFrame:
        """Compute and store the statistics of a feature set version; returns them."""
        from indb.feature_store import sets, statistics

        def run(backend):
            fs = sets.get(backend, feature_set, version)
            return pd.DataFrame(statistics.compute_feature_set(backend, fs))

        return self._call(run)

    def deployments(self) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("deployments", "list_deployments", b.dialect)))

    # -- monitoring -----------------------------------------------------------------------------
    def create_monitor(
        self,
        name: str,
        deployment: str,
        *,
        reference,
        window="1 day",
        features=None,
        thresholds: dict | None = None,
        mode: str = "exact",
        time_column: str | None = None,
        protected=None,
        favorable=None,
        importance: bool = False,
    ):
        """Watch a deployment for drift and accuracy, window by window, against a reference.

        ``reference``: a time window ``(start, end)`` of the deployment's rows, a SELECT query,
        or a training set name. Its statistics are computed now and stored. ``features``:
        columns to watch (default: the model's inputs and ``prediction``). ``thresholds``:
        ``{"psi": 0.3, "income": {"wasserstein": 0.2}, "accuracy": 0.8}`` over the defaults.
        ``mode``: ``"exact"`` or ``"binned"`` (one pass per window; see indb.monitoring.drift).
        ``time_column``: a timestamp column of the request table (e.g. an event time) that
        places rows in windows and in a ``(start, end)`` reference; default: ``scored_at``.
        ``protected`` / ``favorable``: group fairness per window over these columns, with this
        class as the favorable outcome (see indb.monitoring.fairness). ``importance``: global
        importance and attribution drift from ``<table>_explanations`` (indb.monitoring.importance).
        """
        from indb.monitoring import monitors

        return self._call(
            monitors.create,
            name,
            deployment,
            reference=reference,
            window=window,
            features=features,
            thresholds=thresholds,
            mode=mode,
            time_column=time_column,
            protected=protected,
            favorable=favorable,
            importance=importance,
        )

    def run_monitor(self, name: str, *, since=None, workers: int | None = None):
        """Compute the windows since the last run; append results, open alerts. On PostgreSQL
        this is ``CALL indb.run_monitor(name)``, which pg_cron can schedule. ``workers``: how
        many statements run at once on DuckDB (default: its ``threads`` setting; 1: serial)."""
        from indb.monitoring import runner

        summary = self._call(runner.run, name, since=since, workers=workers)
        self._wake_scheduler()  # jobs waiting for its alerts (on_alert) run now
        return summary

    def monitor_results(self, name: str) -> pd.DataFrame:
        from indb.monitoring import monitors

        self._call(monitors.get, name)
        return self._call(lambda b: b.query(statement("monitoring", "results", b.dialect), {"monitor": name}))

    def alerts(self, name: str) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("monitoring", "alerts", b.dialect), {"monitor": name}))

    def acknowledge_alert(self, alert_id: int, note: str | None = None) -> dict:
        """Mark an alert seen: it stays the one alert of its ongoing condition (on PostgreSQL
        also ``SELECT indb.acknowledge_alert(id)``)."""
        from indb.monitoring import sinks

        return self._call(sinks.set_status, alert_id, "acknowledged", note)

    def resolve_alert(self, alert_id: int, note: str | None = None) -> dict:
        """Close an alert; a later crossing opens a new one (``SELECT indb.resolve_alert(id)``)."""
        from indb.monitoring import sinks

        return self._call(sinks.set_status, alert_id, "resolved", note)

    def add_alert_sink(self, monitor: str, kind: str, target) -> dict:
        """Send a monitor's new alerts somewhere: ``kind`` webhook (a URL), notify (a
        PostgreSQL NOTIFY channel) or command (an argv list; the alert JSON on stdin)."""
        from indb.monitoring import sinks

        return self._call(sinks.add_sink, monitor, kind, target)

    def alert_sinks(self, monitor: str) -> pd.DataFrame:
        from indb.monitoring import sinks

        return self._call(sinks.sinks, monitor)

    def monitor_report(self, name: str) -> str:
        """A self-contained HTML page: drift per column over time, quality per version, and the
        reference against the latest window for the most drifted columns."""
        from indb.monitoring import report

        return self._call(report.render, name)

    def add_humility_rule(
        self,
        deployment: str,
        name: str,
        kind: str,
        feature: str | None = None,
        *,
        low: float | None = None,
        high: float | None = None,
        categories=None,
        action: str = "log",
        override=None,
    ) -> dict:
        """Check every scored row: ``kind`` outside_range | unseen_category | uncertain;
        ``action`` log | override (with ``override=``) | reject. See indb.monitoring.humility."""
        from indb.monitoring import humility

        return self._call(
            humility.add_rule,
            deployment,
            name,
            kind,
            feature,
            low=low,
            high=high,
            categories=categories,
            action=action,
            override=override,
        )

    def remove_humility_rule(self, deployment: str, name: str) -> None:
        from indb.monitoring import humility

        self._call(humility.remove_rule, deployment, name)

    def humility_events(self, deployment: str) -> pd.DataFrame:
        from indb.monitoring import humility

        return self._call(humility.events, deployment)

    def monitors(self) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("monitoring", "list_monitors", b.dialect)))

    def drop_monitor(self, name: str) -> None:
        from indb.monitoring import monitors

        self._call(monitors.drop, name)

    # -- jobs -----------------------------------------------------------------------------------
    def schedule(
        self,
        name: str,
        schedule: str | None,
        action: str,
        *,
        timezone: str = "UTC",
        on_alert: dict | None = None,
        retries: int = 0,
        retry_delay: float = 60,
        timeout: float | None = None,
        alert_after_failures: int = 3,
        catch_up: str = "latest",
        comment: str | None = None,
        enabled: bool = True,
        dry_run: bool = False,
        **arguments,
    ):
        """Run ``action`` (see :mod:`indb.jobs.actions`) with ``arguments`` on a schedule: cron
        (``"*/15 * * * *"``), ``"@daily"`` or an interval (``"15 minutes"``) in ``timezone``,
        and/or after a monitor raises a matching alert (``on_alert={"monitor": "loans",
        "metric": "psi"}``). ``retries`` more attempts, ``retry_delay`` seconds after the first
        failure and twice as long after each later one; ``timeout`` seconds; an alert after
        ``alert_after_failures`` failures in a row; ``catch_up`` (latest, all, none) for runs
        missed while no scheduler ran. On PostgreSQL this is
        ``SELECT indb.schedule(...)`` and pg_cron runs it; on DuckDB a scheduler does
        (:meth:`start_scheduler`, ``indb scheduler``). ``dry_run`` returns the plan only."""
        from indb.jobs import api

        spec = api.JobSpec(
            name,
            schedule,
            action,
            arguments,
            timezone=timezone,
            on_alert=on_alert,
            retries=retries,
            retry_delay=retry_delay,
            timeout=timeout,
            alert_after_failures=alert_after_failures,
            catch_up=catch_up,
            comment=comment,
            enabled=enabled,
        )
        job = self._call(api.schedule, spec, dry_run=dry_run)
        self._wake_scheduler()
        return job

    def job(self, name: str):
        from indb.jobs import api

        return self._call(api.get, name)

    def jobs(self) -> pd.DataFrame:
        """Every job with its last run, last success, failures in a row and next run."""
        from indb.jobs import api

        return self._call(api.jobs)

    def job_runs(self, name: str | None = None, *, limit: int = 100) -> pd.DataFrame:
        """The latest runs (newest first) of one job, or of all."""
        from indb.jobs import api

        return self._call(api.runs, name, limit)

    def run_job(self, name: str):
        """Run a job now (reason ``manual``, with its retries); returns its last attempt."""
        from indb.jobs import runner

        return self._call(runner.run, name)

    def unschedule(self, name: str, *, dry_run: bool = False):
        """Remove a job; its runs stay in ``indb.job_runs``."""
        from indb.jobs import api

        return self._call(api.unschedule, name, dry_run=dry_run)

    def enable_job(self, name: str, enabled: bool = True, *, dry_run: bool = False):
        from indb.jobs import api

        plan = self._call(api.enable, name, enabled, dry_run=dry_run)
        self._wake_scheduler()
        return plan

    def start_scheduler(self, *, poll: float = 30.0, grace: float = 30.0):
        """Run due jobs on a background thread of this process, on a connection of its own,
        until :meth:`stop_scheduler` or :meth:`close` (which give a run under way ``grace``
        seconds, then interrupt it: recorded failed). Refused when another scheduler runs the
        jobs of this database (in this process or another)."""
        from indb.jobs.scheduler import Scheduler, SchedulerError, lock_path

        if getattr(self, "_scheduler", None) is not None:
            raise SchedulerError("this connection's scheduler is running already")
        if self.backend.supports_procedures:
            raise SchedulerError(
                f"{self.backend.name} runs jobs itself (pg_cron calls indb.run_job): no indb scheduler needed"
            )
        if lock_path(self.backend) is None:
            raise SchedulerError(
                "start_scheduler() needs a database file (its thread opens a connection of its own)"
            )
        scheduler = Scheduler.open(self.url, poll=poll, grace=grace)
        try:
            scheduler.start()
        except BaseException:
            scheduler.backend.close()
            raise
        self._scheduler = scheduler
        return scheduler

    def stop_scheduler(self, grace: float | None = None) -> None:
        scheduler = getattr(self, "_scheduler", None)
        if scheduler is not None:
            self._scheduler = None
            scheduler.stop(grace)

    def _wake_scheduler(self) -> None:
        scheduler = getattr(self, "_scheduler", None)
        if scheduler is not None:
            scheduler.wake()

    # -- challengers (issue 13.4) ---------------------------------------------------------------
    def add_challenger(
        self,
        table: str,
        version: int,
        *,
        mode: str = "shadow",
        weight: float = 0.1,
        runtime: str = "auto",
        dry_run: bool = False,
    ) -> Deployment:
        """Score inserts into ``table`` with ``version`` of its model too, in the same statement:
        ``mode="shadow"`` into ``<table>_predictions`` with role 'challenger' and served false
        (the application sees the champion); ``mode="split"`` serves the share ``weight`` of
        request ids (by a hash of id) with the challenger instead. A switch: atomic under
        concurrent inserts. See :mod:`indb.lifecycle.challengers`."""
        from indb.lifecycle import challengers

        return self._call(
            challengers.add, table, version, mode=mode, weight=weight, runtime=runtime, dry_run=dry_run
        )

    def remove_challenger(self, table: str, version: int, *, dry_run: bool = False) -> Deployment:
        """Stop scoring ``table``'s inserts with challenger ``version``."""
        from indb.lifecycle import challengers

        return self._call(challengers.remove, table, version, dry_run=dry_run)

    def challengers(self, table: str) -> pd.DataFrame:
        """The challengers of a deployment (``indb.challengers``), oldest first."""
        from indb import identifiers
        from indb.sql import statement

        def run(backend):
            return backend.query(
                statement("challengers", "list_challengers", backend.dialect),
                {"deployment": identifiers.table_name(table)},
            )

        return self._call(run)

    # -- lifecycle: training runs and retraining (indb.lifecycle) ------------------------------
    def create_retraining(
        self,
        model: str,
        *,
        training_set: str,
        holdout: str = "20%",
        metric: str,
        schedule: str | None = None,
        on_alert: dict | None = None,
        min_new_labels: int = 0,
        promote: str = "manual",
        min_improvement: float = 0.0,
        min_labels: int = 100,
        confidence: float = 0.95,
        deployment: str | None = None,
    ):
        """Store how ``model`` is retrained (``indb.retraining_policies``): rebuild the
        materialized ``training_set`` with cutoff = now, keep the latest rows as the holdout
        (``"20%"`` or ``"30 days"``), rank by ``metric``; skip while fewer than
        ``min_new_labels`` labeled rows arrived. ``promote``: ``manual``, ``approval`` (the run
        notes a promotion request) or ``auto`` (the new version shadows ``deployment`` as a
        challenger; ``min_improvement``, ``min_labels`` and ``confidence`` are for its
        comparison). With ``schedule`` and/or ``on_alert`` a job ``retrain_<model>`` runs it."""
        from indb.lifecycle import retraining

        policy = self._call(
            retraining.create,
            model,
            training_set=training_set,
            holdout=holdout,
            metric=metric,
            schedule=schedule,
            on_alert=on_alert,
            min_new_labels=min_new_labels,
            promote=promote,
            min_improvement=min_improvement,
            min_labels=min_labels,
            confidence=confidence,
            deployment=deployment,
        )
        self._wake_scheduler()
        return policy

    def retraining(self, model: str):
        """A model's retraining policy."""
        from indb.lifecycle import retraining

        return self._call(retraining.get, model)

    def drop_retraining(self, model: str) -> None:
        """Remove a model's retraining policy and its job (training runs stay)."""
        from indb.lifecycle import retraining

        self._call(retraining.drop, model)

    def retrain(
        self,
        model: str,
        *,
        recipe=None,
        triggered_by: str | None = None,
        seed: int | None = None,
        max_rows: int | None = None,
    ):
        """Run ``model``'s retraining policy now: a new training set version, a fit of the
        champion's recipe (or ``recipe``: a recipe dict or an unfitted estimator; ``seed`` sets
        every ``random_state``), a new version with lineage, holdout metrics of it and of the
        champion, one ``indb.training_runs`` row (succeeded, failed or skipped). ``max_rows``: a
        larger training set fails the run before its rows are read."""
        from indb.lifecycle import retraining

        return self._call(
            retraining.retrain, model, recipe=recipe, triggered_by=triggered_by, seed=seed, max_rows=max_rows
        )

    def training_run(self, run_id: int) -> dict:
        from indb.lifecycle import training

        return self._call(training.get, run_id)

    def training_runs(self, model: str | None = None, *, limit: int = 100) -> pd.DataFrame:
        """Training runs, newest first (of one model, or all)."""
        from indb.lifecycle import training

        return self._call(training.runs, model, limit)

    def leaderboard(self, model: str, metric: str | None = None) -> pd.DataFrame:
        """Every version of ``model`` evaluated on its latest training run's holdout, ranked per
        metric (``indb.leaderboard``); ``metric`` keeps one (e.g. ``"auc"``)."""
        from indb.lifecycle import training

        return self._call(training.leaderboard, model, metric)

    # -- comparison and promotion (issue 13.5) --------------------------------------------------
    def challenger_comparison(self, table: str, *, store: bool = False, **settings) -> pd.DataFrame:
        """The deployment's arms against its champion, per window and metric, computed now
        (``settings``: confidence, min_labels, resamples, seed, windows; see
        :class:`indb.lifecycle.comparison.Settings`). ``store`` appends the rows to
        ``indb.challenger_comparisons`` (the view ``indb.challenger_comparison`` shows the
        latest per deployment)."""
        from indb.lifecycle import comparison

        def run(backend):
            result = comparison.compare(backend, table, comparison.Settings(**settings))
            if store:
                comparison.store(backend, result)
            return result.frame()

        return self._call(run)

    def evaluate_challengers(self, table: str, **options):
        """Compare, store the comparison and apply the model's retraining policy (auto:
        promote; approval: open a promotion request; manual: report). ``options`` override the
        policy (promote, metric, min_improvement, min_labels, confidence) or the comparison
        (windows, resamples, seed); ``dry_run=True`` changes nothing. See
        :mod:`indb.lifecycle.promotion`."""
        from indb.lifecycle import promotion

        return self._call(promotion.evaluate, table, **options)

    def promote(self, table: str, version: int | str, *, reason: str | None = None, dry_run: bool = False):
        """Make ``version`` (a number or an alias) the champion of the deployment on ``table``:
        one atomic switch, recorded in ``indb.deployment_history`` and the audit log with the
        reason and the latest stored comparison of that version as evidence; completes its
        promotion requests and removes it from the challengers."""
        from indb.lifecycle import promotion

        return self._call(promotion.promote, table, version, reason=reason, dry_run=dry_run)

    def rollback(
        self, table: str, to: int | str | None = None, *, reason: str | None = None, dry_run: bool = False
    ):
        """Switch the deployment on ``table`` back to its previous champion (or to ``to``, a
        version that was its champion before, from ``indb.deployment_history``): atomic, audited."""
        from indb.lifecycle import promotion

        return self._call(promotion.rollback, table, to=to, reason=reason, dry_run=dry_run)

    def deployment_history(self, table: str) -> pd.DataFrame:
        """The champions of the deployment on ``table``, oldest first, with reasons and evidence."""
        from indb import identifiers

        table = identifiers.table_name(table)
        return self._call(
            lambda b: b.query(statement("promotion", "list_history", b.dialect), {"deployment": table})
        )

    def promotion_requests(self) -> pd.DataFrame:
        return self._call(lambda b: b.query(statement("promotion", "list_requests", b.dialect)))

    # -- models as files (issue 14.3) ----------------------------------------------------------
    def export_model(self, name: str, directory, version: int | str | None = None):
        """Write ``model.onnx``, ``indb-model.json`` and ``MODEL.md`` of a version (number, alias
        or None for the default) into ``directory``; returns the folder's path."""
        from indb.governance import files

        return self._call(files.export, name, directory, version)

    def import_model(self, directory, name: str | None = None) -> ModelVersion:
        """Register an exported folder after checking its sha256 and re-running the ONNX on its
        recorded sample against the recorded outputs; the same sha256 again returns the
        existing version and changes nothing."""
        from indb.governance import files

        return self._call(files.import_, directory, name)[0]

    def verify_model(
        self,
        name: str,
        version: int | str | None = None,
        *,
        min_metrics: dict | None = None,
        max_drift: dict | None = None,
        allow_no_drift_data: bool = False,
    ):
        """Check a version's metrics against minimums (``{"auc": 0.8}``) and the latest drift of
        the deployments serving it against maximums (``{"psi": 0.2}``); returns a
        :class:`indb.governance.files.Report` (``.passed``, ``.text()``, ``.to_dict()``). A drift
        limit without monitor results fails unless ``allow_no_drift_data``."""
        from indb.governance import files

        return self._call(
            files.verify,
            name,
            version,
            min_metrics=min_metrics,
            max_drift=max_drift,
            allow_no_drift_data=allow_no_drift_data,
        )

    # -- governance: lineage (issue 14.4) -------------------------------------------------------
    def lineage(self, model: str, version: int | str | None = None) -> dict:
        """A version's lineage from ``indb.lineage`` as a tree: upstream (training run, training
        set version, feature set versions, sources, parent version) and downstream (deployments,
        later versions)."""
        from indb.governance import lineage

        return self._call(lineage.tree, model, version)

    def reproduce(self, model: str, version: int | str | None = None):
        """Rebuild the version's training set at its recorded cutoff (rolled back), refit its
        recipe, convert, and report whether the ONNX sha256 matches; if not, which input changed
        (``data``, ``recipe`` or ``environment``). Registers nothing."""
        from indb.governance import lineage

        return self._call(lineage.reproduce, model, version)

    # -- governance: stages and promotion requests (indb.governance.stages) --------------------
    def set_policy(
        self,
        model: str,
        approvals: int = 2,
        approver_role: str | None = None,
        require_checks: list | None = None,
    ) -> dict:
        """How many distinct approvers (never the requester) of ``approver_role`` (None: indb's
        approver role) a stage change of ``model`` needs, and ``require_checks`` that must pass:
        ``{"min_metric": {"roc_auc": 0.8}}``, ``"no_open_drift_alert"``."""
        from indb.governance import stages

        return self._call(stages.set_policy, model, approvals, approver_role, require_checks)

    def stage_policy(self, model: str) -> dict:
        """The stage policy of ``model`` (approvals, approver role, checks), or the default."""
        from indb.governance import stages

        return self._call(stages.policy, model)

    def request_promotion(
        self,
        model: str,
        version: int,
        to_stage: str,
        reason: str | None = None,
        *,
        as_user: str | None = None,
        deployment: str | None = None,
    ) -> int:
        """Open a request to move a version to a stage (``as_user``: single-user databases only).
        With ``deployment`` (to production), the approval that completes it also switches the
        deployment on that table to the version (``approved`` instead of ``done`` when the
        approver may not switch it: ``db.promote`` by a role that deploys completes it)."""
        from indb.governance import stages

        return self._call(
            stages.request_promotion, model, version, to_stage, reason, as_user=as_user, deployment=deployment
        )

    def approve(self, request_id: int, comment: str | None = None, *, as_user: str | None = None) -> str:
        """Approve a stage request: ``open`` while approvals are missing, ``done`` once the stage
        changed (and a deployment the request names switched), ``approved`` when the switch
        waits for a role that may deploy; a failing check raises and records nothing."""
        from indb.governance import stages

        return self._call(stages.approve, request_id, comment, as_user=as_user)

    def reject(self, request_id: int, comment: str | None = None, *, as_user: str | None = None) -> str:
        """Reject a stage request."""
        from indb.governance import stages

        return self._call(stages.reject, request_id, comment, as_user=as_user)

    def stages(self, model: str) -> pd.DataFrame:
        """Each version of ``model`` with its stage."""
        from indb.governance import stages

        return self._call(stages.stages, model)

    def stage_requests(self, model: str) -> pd.DataFrame:
        """The stage requests of ``model``, oldest first."""
        from indb.governance import stages

        return self._call(stages.requests, model)

    def require_stage(self, table: str, stage: str | None = "production") -> None:
        """Mark the deployment on ``table`` so that deploying, promoting or rolling back to a
        version outside ``stage`` fails (None: unmark); its current version must be in it."""
        from indb import identifiers
        from indb.governance import stages

        return self._call(stages.require_stage, identifiers.table_name(table), stage)

    # -- governance: model documentation (issue 14.5, indb.governance.card) --------------------
    def model_card(self, model: str, version: int | str | None = None, format: str = "html") -> str:
        """The model card of a version (number, alias or None for the default) from the catalog:
        documentation, owners, signature, recipe, training data and statistics, holdout metrics
        and leaderboard position, drift and accuracy with charts, humility rules, stage,
        approvals and audit trail. ``format``: ``"html"`` (self-contained, printable) or ``"md"``."""
        from indb.governance import card

        return self._call(card.render, model, version, format)

    def document_model(
        self,
        model: str,
        version: int | str | None = None,
        *,
        purpose: str | None = None,
        intended_use: str | None = None,
        limitations: str | None = None,
        ethical_considerations: str | None = None,
    ) -> dict:
        """Store the card's free text for the model (``version`` None: every version) or one
        version (overrides field by field); fields left None keep their text, ``""`` clears one.
        Audited; on PostgreSQL developers may, readers may not."""
        from indb.governance import card

        return self._call(
            card.document,
            model,
            version,
            purpose=purpose,
            intended_use=intended_use,
            limitations=limitations,
            ethical_considerations=ethical_considerations,
        )

    # -- governance: collaboration (indb.governance.collaboration) ----------------------------
    # Owners, comments, descriptions and tags on models, feature sets, monitors and jobs;
    # search over them (indb.catalog_objects).
    from indb.governance import collaboration as _collaboration

    owners = _on_backend(_collaboration.owners)
    add_owner = _on_backend(_collaboration.add_owner)
    remove_owner = _on_backend(_collaboration.remove_owner)
    comment = _on_backend(_collaboration.comment)
    comments = _on_backend(_collaboration.comments)
    describe = _on_backend(_collaboration.describe)
    catalog_object = _on_backend(_collaboration.catalog_object)
    search = _on_backend(_collaboration.search)
    del _collaboration

    # -- explanations (issue 15.1, 15.4) ----------------------------------------------------------
    def _install_explainers(self) -> None:
        """The in-process explainers of deployments made with explain=True (DuckDB), as
        registry.install_all does for models."""
        from indb import explanations

        explanations.install_all(self.backend)

    def explain(self, model: str, rows: Any, version: int | str | None = None) -> pd.DataFrame:
        """Contributions of each input column to the raw output of ``model`` (a version number,
        alias, or the default) for ``rows`` (a DataFrame, a dict for one row, or a list of
        dicts): one row per (row, feature), largest |contribution| first, with ``base`` and
        ``output`` (base + the row's contributions); ``attrs`` say what the output is."""
        from indb import explanations

        return self._call(explanations.explain, model, rows, version)

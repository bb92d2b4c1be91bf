"""Monitoring treated as untrusted input: what a low-privilege role can put in front of a
superuser's monitor run, NaN thresholds and bounds, and errors a failed create must show."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

import indb
from tests.test_monitoring_drift import DAY1, DAY2, deployed, load

NAN = float("nan")


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}").geturl()


def _two_days(db, shift: float = 0.0) -> None:
    rng = np.random.default_rng(7)
    for day, offset in ((DAY1, 0.0), (DAY2, shift)):
        frame = pd.DataFrame(
            {"x": rng.normal(offset, 1, 200), "y": rng.exponential(1, 200), "c": rng.choice(list("abc"), 200)}
        )
        load(db, frame, day)


def _postgres_only(db):
    if not db.backend.supports_procedures:
        pytest.skip("indb.run_monitor is a PostgreSQL procedure")
    import psycopg

    return psycopg


def test_run_monitor_ignores_objects_a_low_privilege_role_puts_in_the_deployment_schema(db):
    """10.3: a role with CREATE on the deployment's schema defines public.date_bin and
    public.indb_ks_pvalue; the superuser's CALL indb.run_monitor must run neither."""
    psycopg = _postgres_only(db)
    deployed(db)
    _two_days(db, shift=1.0)
    db.create_monitor("m", "requests", reference=(DAY1, DAY2), window="1 day")
    role = f"mallory_{uuid.uuid4().hex[:8]}"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    db.sql(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"')
    try:
        with psycopg.connect(_as_user(db.url, role), autocommit=True) as mallory:
            mallory.execute("CREATE TABLE public.evidence (who text, what text)")
            mallory.execute("GRANT INSERT ON public.evidence TO PUBLIC")
            mallory.execute(
                "CREATE FUNCTION public.date_bin(interval, timestamp, timestamp) RETURNS timestamp "
                "LANGUAGE sql AS $$ INSERT INTO public.evidence VALUES (current_user, 'date_bin'); "
                "SELECT pg_catalog.date_bin($1, $2, $3) $$"
            )
            mallory.execute(
                "CREATE FUNCTION public.indb_ks_pvalue(double precision, bigint, bigint) "
                "RETURNS double precision LANGUAGE sql AS $$ "
                "INSERT INTO public.evidence VALUES (current_user, 'ks'); SELECT 0.5::float8 $$"
            )
        with psycopg.connect(db.url, autocommit=True) as superuser:
            superuser.execute("CALL indb.run_monitor('m')")
            ran = superuser.execute("SELECT who, what FROM public.evidence").fetchall()
        assert ran == []
        results = db.monitor_results("m")
        x = results[(results.feature == "x") & (results.window_start == pd.Timestamp(DAY2))]
        assert set(x.metric) >= {"ks_d", "ks_pvalue", "wasserstein", "psi", "js"}
        assert x.set_index("metric").value["ks_pvalue"] < 1e-6  # scipy's, not the forged 0.5
    finally:
        db.sql(f'DROP OWNED BY "{role}" CASCADE')
        db.sql(f'DROP ROLE "{role}"')


def test_call_run_monitor_sends_the_client_no_notice(db):
    """11.16: CALL indb.run_monitor used to tell every client that indb_monitor_window
    did not exist."""
    psycopg = _postgres_only(db)
    deployed(db)
    _two_days(db)
    db.create_monitor("m", "requests", reference=(DAY1, DAY2), window="1 day")
    notices = []
    with psycopg.connect(db.url, autocommit=True) as client:
        client.add_notice_handler(lambda d: notices.append(d.message_primary))
        client.execute("CALL indb.run_monitor('m')")
        client.execute("CALL indb.run_monitor('m')")
        assert client.execute("SHOW client_min_messages").fetchone()[0] == "notice"
    assert notices == []


@pytest.mark.parametrize(
    "thresholds",
    [{"psi": NAN}, {"x": {"wasserstein": NAN}}, {"accuracy": NAN}, {"js": float("inf")}],
    ids=["all", "column", "quality", "inf"],
)
def test_nan_thresholds_are_refused(db, thresholds):
    deployed(db)
    _two_days(db)
    with pytest.raises(indb.IndbError, match="must be a finite number"):
        db.create_monitor("m", "requests", reference=(DAY1, DAY2), thresholds=thresholds)
    assert db.monitors().empty


@pytest.mark.parametrize("bounds", [{"low": NAN}, {"high": NAN}, {"low": 0, "high": float("nan")}])
def test_nan_humility_bounds_are_refused(db, bounds):
    deployed(db)
    with pytest.raises(indb.IndbError, match="must be a finite number"):
        db.add_humility_rule("requests", "x_range", "outside_range", "x", **bounds)
    with pytest.raises(indb.IndbError, match="must be a finite number"):
        db.add_humility_rule("requests", "unsure", "uncertain", low=bounds.get("low", 0.4), high=NAN)
    assert db.sql("SELECT count(*) AS n FROM indb.humility_rules").n[0] == 0


def test_a_failed_create_shows_its_own_error_and_can_be_retried(db):
    """10.8: a statement failing inside create_monitor used to be hidden by the DROP in a
    finally block ("current transaction is aborted"); 11.16: on DuckDB the retry then said
    "function indb_ks_pvalue already created"."""
    deployed(db)
    _two_days(db)
    with pytest.raises(Exception) as failed:  # noqa: PT011 - the database's own conversion error
        db.create_monitor(
            "m", "requests", reference="SELECT 'abc' AS x, y, c, prediction FROM requests_scored"
        )
    message = str(failed.value)
    assert "abc" in message and "aborted" not in message.lower(), message
    assert db.monitors().empty
    monitor = db.create_monitor("m", "requests", reference=(DAY1, DAY2), window="1 day")
    assert monitor.n_reference == 200
    assert db.run_monitor("m").windows == 2


def test_create_monitor_retried_after_a_refusal_works(db):
    """11.16: on DuckDB the first create registered indb_ks_pvalue inside the transaction its
    refusal rolled back; the retry said "function indb_ks_pvalue already created"."""
    deployed(db)
    _two_days(db)
    with pytest.raises(indb.IndbError, match="has no rows"):
        db.create_monitor("m", "requests", reference=("2030-01-01", "2030-01-02"))
    assert db.create_monitor("m", "requests", reference=(DAY1, DAY2)).n_reference == 200
    assert db.run_monitor("m").windows == 2


def test_runs_do_not_replace_the_procedure_each_time(db):
    """Every run used to CREATE OR REPLACE indb.run_monitor: a role that does not own it could
    not run a monitor, and concurrent runs collided ("tuple concurrently updated")."""
    _postgres_only(db)
    deployed(db)
    _two_days(db)
    db.create_monitor("m", "requests", reference=(DAY1, DAY2), window="1 day")
    version = (
        "SELECT xmin::text AS v FROM pg_proc "
        "WHERE oid = to_regprocedure('indb.run_monitor(text, timestamp, bigint)')"
    )
    before = db.sql(version).v[0]
    db.run_monitor("m")
    db.run_monitor("m")
    assert db.sql(version).v[0] == before


def test_a_developer_runs_the_first_monitor_created_after_install(db):
    """indb.run_monitor appears with a database's first monitor, after the privileges were
    installed: the new-function hook grants it to developers all the same."""
    psycopg = _postgres_only(db)
    deployed(db)
    _two_days(db)
    db.create_monitor("m", "requests", reference=(DAY1, DAY2), window="1 day")
    role = f"dev_{uuid.uuid4().hex[:8]}"
    db.sql(f'CREATE ROLE "{role}" LOGIN IN ROLE indb_developer')
    with psycopg.connect(_as_user(db.url, role), autocommit=True) as developer:
        developer.execute("CALL indb.run_monitor('m')")
        ((runs,),) = developer.execute("SELECT count(*) FROM indb.monitor_results WHERE monitor = 'm'")
        assert runs > 0
        # the run's bookkeeping columns only: the SQL a superuser's run executes stays the admin's
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            developer.execute("UPDATE indb.monitors SET windows_sql = 'SELECT 1' WHERE name = 'm'")

"""indb's own scheduler, for databases without pg_cron (DuckDB).

A DuckDB file has one writing process, so jobs run inside the process that holds it:
``db.start_scheduler()`` on a background thread of the application, ``indb scheduler`` as the
process that owns the file (systemd, supervisor, docker), or ``indb jobs run-due`` once (system
cron, CI). All three take the same lock, a file beside the database (``<file>.scheduler.lock``,
``flock``): a second scheduler, in this process or another, refuses to start.

Each pass (:meth:`Scheduler.tick`) runs the jobs whose ``next_run`` has come, applying the
job's catch-up policy to runs missed while no scheduler ran (``latest``: run once, record the
others ``skipped`` with reason ``catch_up``; ``all``: run each; ``none``: run none of them), then
the jobs whose ``on_alert`` matches an alert newer than their ``last_alert_id``. Between passes
it sleeps until the next due time (at most ``poll`` seconds, which bounds how late an alert or
a job created by another connection is seen). Time comes from a :class:`~indb.jobs.clock.Clock`,
so tests and the demo drive it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from datetime import datetime

from indb.backends.base import Backend
from indb.errors import IndbError
from indb.jobs import runner
from indb.jobs.api import get
from indb.jobs.clock import SYSTEM, Clock
from indb.sql import statement

log = logging.getLogger("indb.jobs")


class SchedulerError(IndbError):
    """A scheduler that cannot start: another one holds the database, or it has pg_cron."""


def lock_path(backend: Backend) -> str | None:
    path = getattr(backend, "path", None)
    if not path or path == ":memory:":
        return None
    return os.path.abspath(path) + ".scheduler.lock"


class _Lock:
    """``flock`` on the lock file (per open file, so a second scheduler in this very process is
    refused too); for an in-memory database, a set of the databases this process schedules."""

    _memory: set[str] = set()
    _memory_guard = threading.Lock()

    def __init__(self, backend: Backend):
        self.path = lock_path(backend)
        self.key = str(getattr(backend, "scope", backend.url))
        self.file = None

    def acquire(self) -> None:
        if self.path is None:
            with self._memory_guard:
                if self.key in self._memory:
                    raise SchedulerError("a scheduler already runs the jobs of this database in this process")
                self._memory.add(self.key)
            return
        import fcntl

        file = open(self.path, "a+")  # noqa: SIM115 (held open for as long as the lock is)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise SchedulerError(
                f"another scheduler (pid {holder}) already runs the jobs of this database "
                f"(lock {self.path}): stop it first, or use that one"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self.file = file

    def release(self) -> None:
        if self.path is None:
            with self._memory_guard:
                self._memory.discard(self.key)
            return
        if self.file is not None:
            import fcntl

            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


class Scheduler:
    """Runs due jobs of one database through ``backend`` (used by one thread at a time)."""

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Clock = SYSTEM,
        poll: float = 30.0,
        grace: float = 30.0,
        owns_backend: bool = False,
    ):
        if backend.supports_procedures:
            raise SchedulerError(
                f"{backend.name} runs jobs itself (pg_cron calls indb.run_job): no indb scheduler needed"
            )
        self.backend = backend
        self.clock = clock
        self.poll = poll
        self.grace = grace
        self.owns_backend = owns_backend
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = _Lock(backend)
        self._locked = False
        self.thread: threading.Thread | None = None
        self.busy = threading.Event()  # set while a pass runs jobs
        self.stop_reason = "the scheduler stopped"

    @classmethod
    def open(cls, url: str, **options) -> Scheduler:
        """A scheduler with a connection of its own to the database at ``url``."""
        import indb

        db = indb.connect(url)
        try:
            return cls(db.backend, owns_backend=True, **options)
        except Exception:
            db.close()
            raise

    # -- one pass -------------------------------------------------------------------------------
    def tick(self) -> list[runner.Run]:
        """Run what is due now; the runs recorded (skipped ones included)."""
        done: list[runner.Run] = []
        self.busy.set()
        try:
            now = self.clock.now()
            for (name,) in self.backend.rows(
                statement("jobs", "due_jobs", self.backend.dialect), {"now": now}
            ):
                if self.stopping.is_set():
                    break
                try:
                    done += self._run_scheduled(name, now)
                except Exception as e:  # removed meanwhile, say: the other jobs still run
                    log.error("indb scheduler: job %s: %s", name, self.backend.translate(e))
            if not self.stopping.is_set():
                done += self._run_alerted()
        finally:
            self.busy.clear()
        return done

    def _run_scheduled(self, name: str, now: datetime) -> list[runner.Run]:
        job = get(self.backend, name)
        schedule = job.parsed
        due = schedule.occurrences(job.next_run, now) or [job.next_run]
        latest = due[-1]
        if job.catch_up == "all":
            to_run, skipped = due, []
        elif job.catch_up == "none" and len(due) > 1:
            to_run, skipped = [], due
        else:
            to_run, skipped = [latest], due[:-1]
        done = [
            runner.skip(
                self.backend,
                job,
                moment,
                "catch_up",
                f"missed while no scheduler ran (catch_up={job.catch_up})",
                clock=self.clock,
            )
            for moment in skipped
        ]
        last = skipped[-1] if skipped else None
        for moment in to_run:
            reason = "schedule" if moment == latest else "catch_up"
            done.append(
                runner.run(
                    self.backend,
                    name,
                    runner="scheduler",
                    reason=reason,
                    scheduled_for=moment,
                    clock=self.clock,
                    stop=self.stopping,
                    job=job,
                )
            )
            last = moment
            if self.stopping.is_set():
                break
        self.backend.execute(
            statement("jobs", "set_next_run", self.backend.dialect),
            {"name": name, "next_run": schedule.next_run(last)},
        )
        return done

    def _run_alerted(self) -> list[runner.Run]:
        done = []
        for name, alert_id in self.backend.rows(statement("jobs", "alert_jobs", self.backend.dialect)):
            # Marked first: a run that fails is not retried by every later pass.
            self.backend.execute(
                statement("jobs", "set_last_alert", self.backend.dialect),
                {"name": name, "alert_id": alert_id},
            )
            done.append(
                runner.run(
                    self.backend,
                    name,
                    runner="scheduler",
                    reason="alert",
                    clock=self.clock,
                    stop=self.stopping,
                )
            )
            if self.stopping.is_set():
                break
        return done

    def seconds_to_next(self) -> float:
        ((next_due,),) = self.backend.rows(statement("jobs", "next_due", self.backend.dialect))
        if next_due is None:
            return self.poll
        return max(0.0, min(self.poll, (next_due - self.clock.now()).total_seconds()))

    def run_due(self) -> list[runner.Run]:
        """One pass under the scheduler lock (``indb jobs run-due``)."""
        self.acquire()
        try:
            return self.tick()
        finally:
            self.release()

    # -- running --------------------------------------------------------------------------------
    def acquire(self) -> None:
        if not self._locked:
            self._lock.acquire()
            self._locked = True
            runner.fail_orphans(self.backend, self.clock)

    def release(self) -> None:
        if self._locked:
            self._lock.release()
            self._locked = False

    def loop(self) -> None:
        """Pass, sleep until the next due time, pass, ... until :meth:`stop`."""
        while not self.stopping.is_set():
            try:
                self.tick()
                wait = self.seconds_to_next()
            except Exception as e:  # a pass that fails is logged; the scheduler keeps going
                log.error("indb scheduler: %s", self.backend.translate(e))
                wait = self.poll
            if self.stopping.is_set():
                break
            self.clock.sleep(wait, self._wake)
            self._wake.clear()

    def start(self) -> Scheduler:
        """Run :meth:`loop` on a background thread (holding the lock until :meth:`stop`)."""
        if self.thread is not None:
            raise SchedulerError("this scheduler is running already")
        self.acquire()
        self.thread = threading.Thread(target=self.loop, name="indb-scheduler", daemon=True)
        self.thread.start()
        # A process that ends without stop(): a DuckDB statement still running on the thread
        # would abort the interpreter's exit.
        atexit.register(self._stop_at_exit)
        return self

    def _stop_at_exit(self) -> None:
        self.stop(0, "the process exited")

    def wake(self) -> None:
        """Look at the jobs again now (one was created or changed)."""
        self._wake.set()

    def stop(self, grace: float | None = None, reason: str | None = None) -> bool:
        """Stop after the run under way, waiting ``grace`` seconds for it before interrupting it
        (recorded ``failed`` with ``reason``). True when the thread ended."""
        atexit.unregister(self._stop_at_exit)
        grace = self.grace if grace is None else grace
        if reason:
            self.stop_reason = reason
        self.stopping.set()
        self._wake.set()
        ended = True
        if self.thread is not None:
            self.thread.join(grace)
            if self.thread.is_alive():
                runner.interrupt(self.backend, self.stop_reason)
                self.thread.join(10)
            ended = not self.thread.is_alive()
        if ended:
            self.release()
            if self.owns_backend:
                self.backend.close()
        else:
            log.error("indb scheduler: a run did not stop when interrupted; leaving it")
        return ended

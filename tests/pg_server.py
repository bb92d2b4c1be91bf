"""A throwaway PostgreSQL cluster for tests, started with the machine's initdb/pg_ctl.

    dsn, stop = start_cluster(tmp_dir)
    ...                       # connect with psycopg.connect(dsn)
    stop()                    # pg_ctl stop -m immediate, then the folder is removed

* ``INDB_TEST_PG_DSN=postgresql://...`` set: that server is used and nothing is started.
* Binaries: the highest ``/usr/lib/postgresql/<major>/bin`` (Debian/Ubuntu) or
  ``/usr/pgsql-<major>/bin`` (RHEL) with major >= 15, else ``initdb`` on PATH;
  ``INDB_TEST_PG_BIN=/path/to/bin`` overrides the search.
* The server listens on 127.0.0.1 on a free port (TCP only, no Unix socket), trusts local
  connections, and runs without durability (fsync, synchronous_commit and full_page_writes
  off). The superuser role is ``postgres``, the database ``indb_test``. When pg_cron is
  installed it is preloaded and ``cron.database_name`` is the test database.
* initdb refuses to run as root: as root, the cluster belongs to an unprivileged OS user
  (``postgres``, created when missing; ``INDB_TEST_PG_OS_USER`` overrides) and lives in a
  fresh folder under the system temp dir, since pytest's own temp dirs are root-only (0700).

Run ``python -m tests.pg_server`` to start one by hand; it prints the DSN and waits for Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIN_MAJOR = 15
SUPERUSER = "postgres"
DATABASE = "indb_test"
DSN_ENV = "INDB_TEST_PG_DSN"
BIN_ENV = "INDB_TEST_PG_BIN"
OS_USER_ENV = "INDB_TEST_PG_OS_USER"
REQUIRED_ENV = "INDB_TEST_PG_REQUIRED"

SKIP_REASON = (
    f"PostgreSQL binaries not found: run `bash .ci/install_postgres.sh` or set {DSN_ENV}=postgresql://..."
)


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started (the message has the log tail)."""


# -- for tests ----------------------------------------------------------------------------------
def pg_unavailable(reason: str) -> None:
    """Skip the current test, or fail it when ``INDB_TEST_PG_REQUIRED=1`` (set in CI)."""
    import pytest

    if os.environ.get(REQUIRED_ENV, "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} ({REQUIRED_ENV} is set)", pytrace=False)
    pytest.skip(reason)


def require_pg_extension(conn, name: str) -> None:
    """Skip (or fail, see ``pg_unavailable``) unless the server can create extension ``name``."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,)).fetchone()
    if row is None:
        pg_unavailable(
            f"PostgreSQL extension {name} is not installed on the test server: "
            "run `bash .ci/install_postgres.sh`"
        )


# -- finding the binaries -----------------------------------------------------------------------
def _major_version(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "initdb"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def _usable(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres"))


def find_pg_bin() -> Path | None:
    """The bin folder of the highest installed PostgreSQL >= 15, or None."""
    override = os.environ.get(BIN_ENV)
    if override:
        path = Path(override)
        return path if _usable(path) else None
    candidates = [
        Path(p) for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin") for p in glob.glob(pattern)
    ]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    best: tuple[int, Path] | None = None
    for bin_dir in candidates:
        if not _usable(bin_dir):
            continue
        major = _major_version(bin_dir)
        if major is not None and major >= MIN_MAJOR and (best is None or major > best[0]):
            best = (major, bin_dir)
    return best[1] if best else None


def _pg_config(bin_dir: Path, flag: str) -> Path | None:
    pg_config = bin_dir / "pg_config"
    if not os.access(pg_config, os.X_OK):
        return None
    try:
        out = subprocess.run(
            [str(pg_config), flag], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def has_extension(bin_dir: Path, name: str, library: str | None = None) -> bool:
    """Whether extension ``name`` is installed for these binaries (control file and library)."""
    share = _pg_config(bin_dir, "--sharedir")
    if share is None:
        major = _major_version(bin_dir)
        share = Path(f"/usr/share/postgresql/{major}")
    if not (share / "extension" / f"{name}.control").exists():
        return False
    if library is None:
        return True
    lib = _pg_config(bin_dir, "--pkglibdir") or bin_dir.parent / "lib"
    return (lib / f"{library}.so").exists()


# -- running as someone else --------------------------------------------------------------------
def _os_user() -> pwd.struct_passwd | None:
    """The unprivileged OS user that owns the cluster when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(OS_USER_ENV, "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


def _run(
    args: list[str],
    user: pwd.struct_passwd | None,
    cwd: Path,
    timeout: float = 120,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    kwargs: dict = {}
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env.update(HOME=str(cwd), USER=user.pw_name, LOGNAME=user.pw_name)
    return subprocess.run(
        args,
        cwd=cwd,  # root's cwd may be unreadable for the OS user
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        **kwargs,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie nobody reaped does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): kill(0) is all we know
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- the cluster --------------------------------------------------------------------------------
class Cluster:
    """One throwaway cluster; calling it (or ``stop()``) stops it and removes its folder."""

    def __init__(self, bin_dir: Path, base: Path, user: pwd.struct_passwd | None) -> None:
        self.bin_dir = bin_dir
        self.base = base
        self.data_dir = base / "data"
        self.log_file = base / "postgres.log"
        self.user = user
        self.port = 0
        self.pg_cron = has_extension(bin_dir, "pg_cron", "pg_cron")
        self._stopped = False

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _pg(self, tool: str, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return _run([str(self.bin_dir / tool), *args], self.user, self.base, **kwargs)

    def _fail(self, what: str, exc: BaseException) -> ClusterError:
        detail = ""
        if isinstance(exc, subprocess.CalledProcessError):
            detail = f"\n{exc.stdout or ''}{exc.stderr or ''}".rstrip()
        return ClusterError(
            f"{what} failed: {exc}{detail}\n--- {self.log_file} (tail) ---\n{_tail(self.log_file)}"
        )

    def init(self) -> None:
        try:
            self._pg(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            # Create the test database before the first start, in single-user mode, so that
            # pg_cron's launcher finds cron.database_name on its first try.
            out = self._pg(
                "postgres",
                "--single",
                "-D",
                str(self.data_dir),
                "-j",
                "postgres",
                stdin=f'CREATE DATABASE "{DATABASE}";\n',
            )
            if "ERROR" in out.stderr or "FATAL" in out.stderr:
                raise ClusterError(out.stderr)
        except (OSError, subprocess.SubprocessError, ClusterError) as exc:
            raise self._fail("initdb", exc) from exc
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "timezone": "'UTC'",
        }
        if self.pg_cron:
            settings |= {
                "shared_preload_libraries": "'pg_cron'",
                "cron.database_name": f"'{DATABASE}'",
                "cron.host": "'127.0.0.1'",  # jobs run over libpq/TCP: there is no Unix socket
            }
        conf = "\n# indb test settings\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            fh.write(conf)
        (self.data_dir / "pg_hba.conf").write_text(
            "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
        )

    def start(self, attempts: int = 5) -> None:
        last: BaseException | None = None
        for _ in range(attempts):
            self.port = _free_port()
            try:
                self._pg(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    "60",
                )
                return
            except (OSError, subprocess.SubprocessError) as exc:
                last = exc
                # Another process took the port between our probe and the server's bind: retry.
                if "could not bind" not in _tail(self.log_file, 10) and "in use" not in _tail(
                    self.log_file, 10
                ):
                    break
        assert last is not None
        raise self._fail("pg_ctl start", last)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server (immediate mode, no checkpoint) and remove the folder; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        pid = self._postmaster_pid()
        if pid is not None:
            try:
                self._pg(
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    timeout=60,
                )
            except (OSError, subprocess.SubprocessError):
                pass
            # Whatever pg_ctl said: make sure the postmaster is gone before removing its files.
            for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
                if not _alive(pid):
                    break
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        shutil.rmtree(self.base, ignore_errors=True)

    __call__ = stop


def _cluster_base(tmp_dir: str | os.PathLike[str], user: pwd.struct_passwd | None) -> Path:
    if user is None:
        base = Path(tempfile.mkdtemp(prefix="pg-", dir=tmp_dir))
    else:
        # pytest's temp dirs are 0700 root: the OS user could not reach a folder inside them.
        base = Path(tempfile.mkdtemp(prefix="indb-pg-"))
        os.chown(base, user.pw_uid, user.pw_gid)
    os.chmod(base, 0o700)
    return base


def start_cluster(tmp_dir: str | os.PathLike[str]) -> tuple[str, Callable[[], None]]:
    """Start a throwaway cluster; return its DSN and a callable that stops and removes it.

    With ``INDB_TEST_PG_DSN`` set, return that DSN and a no-op. Raises ``ClusterError`` when
    no binaries are found (message: ``SKIP_REASON``) or the server does not come up.
    """
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        return dsn, lambda: None
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise ClusterError(SKIP_REASON)
    user = _os_user()
    cluster = Cluster(bin_dir, _cluster_base(tmp_dir, user), user)
    atexit.register(cluster.stop)  # also when the test run is interrupted
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster.dsn, cluster


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        dsn, stop = start_cluster(tmp)
        print(dsn, flush=True)
        if isinstance(stop, Cluster):
            print(f"log: {stop.log_file}", flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT: even if inherited
            signal.signal(sig, signal.default_int_handler)  # as ignored (a shell's `cmd &`)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        stop()

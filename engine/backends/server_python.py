"""Shipping indb's own Python into PostgreSQL, so job actions run inside the server.

A superuser's connect (with PL/Python) installs sql/postgres/server_python.sql with this
client's indb package zipped into ``indb.server_package()``; PL/Python imports indb from
there (see the file's header for why the code travels through the catalog rather than being
installed into the server's site-packages or read from a path). Installed again only when
the package or the statements changed, and never by an indb older than the catalog (it would
ship code that predates the catalog's tables).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from functools import cache
from pathlib import Path

from indb.backends.base import Check
from indb.errors import InvalidNameError
from indb.sql import migrations, statement, statements

# The top folders of the package and the package each is (pyproject's package-dir); any
# subpackage below them is found by walking.
ROOTS = ("indb", "indb.udfs", "indb.feature_store", "indb.sql")
_SKIP = ("__pycache__",)
# What the server's Python needs besides indb for the actions (.ci/install_postgres.sh).
DEPENDENCIES = ("pandas", "pyarrow", "sqlglot", "onnx", "sklearn", "skl2onnx", "psycopg")
PIP_FIX = (
    "install into the Python PL/Python uses (Debian: /usr/bin/python3 -m pip install "
    "--break-system-packages pandas pyarrow sqlglot onnx scikit-learn skl2onnx 'psycopg[binary]'; "
    "or bash .ci/install_postgres.sh), then reconnect"
)


@cache
def _files() -> tuple[dict[str, bytes], str]:
    """This indb's files by their name in the archive, and their fingerprint (once per process)."""
    import importlib

    files: dict[str, bytes] = {}
    for root in ROOTS:
        folder = Path(importlib.import_module(root).__path__[0])
        prefix = root.replace(".", "/")
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not any(p in _SKIP for p in path.parts) and path.suffix != ".pyc":
                files.setdefault(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return files, "indb server package " + digest.hexdigest()[:16]


def package_fingerprint() -> str:
    return _files()[1]


def package() -> bytes:
    """The zip archive of this indb's files, with ``indb-server.json`` (version, latest
    migration, fingerprint). Deterministic: sorted names, fixed times."""
    import indb

    files, fingerprint = _files()
    meta = {
        "version": indb.__version__,
        "migration": max(m.version for m in migrations()),
        "fingerprint": fingerprint,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in [*sorted(files.items()), ("indb-server.json", json.dumps(meta).encode())]:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _statements(backend, python: bool) -> list[str]:
    """The statements to install after the package function (whose slot is the archive)."""
    names = list(statements("server_python", backend.dialect))
    if not python:  # no PL/Python: only the stand-in that says what to install
        names = ("create_check_action_missing", "revoke_public")
        return [statement("server_python", n, backend.dialect) for n in names]
    texts = [
        statement("server_python", n, backend.dialect)
        for n in names
        if n.startswith(("create_", "revoke_"))
        and n not in ("create_package_function", "create_check_action_missing")
    ]
    slots = backend.existing_role_slots()
    if slots is not None:  # after indb's roles exist
        texts += [backend.render("server_python", n, **slots) for n in names if n.startswith("grant_")]
    return texts


def _fingerprint(texts: list[str]) -> str:
    """What the package function's comment ends with: the archive and the statements."""
    digest = hashlib.sha256("\n".join([*texts, package_fingerprint()]).encode())
    return "indb server python " + digest.hexdigest()[:16]


def install(backend) -> None:
    """Install or update indb's Python in the server (see the module docstring)."""
    python = backend.has_plpython and backend.superuser
    texts = _statements(backend, python)
    if not python:
        ((present,),) = backend.rows("SELECT to_regprocedure('indb.check_python_action(text, jsonb)')")
        if present is None:
            with backend.transaction():
                backend.lock_catalog()
                for text in texts:
                    backend.execute(text)
        return
    expected = _fingerprint(texts)
    query = statement("server_python", "installed_package", backend.dialect)
    installed = backend.rows(query)[0][0]
    if installed is not None and installed.endswith(expected):
        return
    latest = max(m.version for m in migrations())
    ((applied,),) = backend.rows("SELECT max(version) FROM indb.schema_migrations")
    if applied is not None and int(applied) > latest:
        return  # an older indb than the catalog: the newer code stays (doctor says so)
    import indb

    data = package()
    comment = (
        f"indb's own Python for job actions inside the server: indb {indb.__version__}, "
        f"migration {latest}, {len(data):,} bytes; {expected}"
    )
    with backend.transaction():
        backend.lock_catalog()
        installed = backend.rows(query)[0][0]
        if installed is not None and installed.endswith(expected):
            return
        backend.execute(
            backend.render(
                "server_python",
                "create_package_function",
                package=backend.literal(base64.b64encode(data).decode("ascii")),
            )
        )
        for text in texts:
            backend.execute(text)
        backend.execute(backend.render("server_python", "comment_package", comment=backend.literal(comment)))


def health(backend) -> list[Check]:
    """indb doctor: the server's Python imports indb from the catalog, with the action
    dependencies, and it is this client's indb."""
    name = "server indb"
    try:
        with backend.transaction():
            ((label,),) = backend.rows("SELECT indb.load_server_python()")
    except Exception as e:  # the driver's error, whatever it is: doctor reports it
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "permission denied" in text:  # jobs run as admins and pg_cron: theirs to check
            detail = f"not checked: user {backend.user!r} may not load it (admins and superusers may)"
            return [Check(name, True, detail)]
        fix = PIP_FIX
        if "server_package" in text or "does not exist" in text:
            fix = "connect once as a superuser with indb (PL/Python installed) to ship indb's Python"
        elif "does not match" in text:
            fix = "connect once as a superuser with the indb that upgraded the catalog"
        return [Check(name, False, text.removeprefix("ERROR:").strip(), fix)]
    try:
        expected = _fingerprint(_statements(backend, True))
    except InvalidNameError:  # this client asks for other role names: the roles check says so
        return [Check(name, True, f"{label}; not compared with this client (see roles)")]
    if expected not in label:
        return [
            Check(
                name,
                False,
                f"the server runs {label}; this client is {expected}",
                "connect once as a superuser with this indb to ship it (jobs run the server's copy)",
            )
        ]
    return [Check(name, True, f"{label}; actions run inside the server")]

#!/usr/bin/env bash
# Install what the PostgreSQL tests need, only where it is missing:
#   - PostgreSQL server (postgresql-$PG_MAJOR), PL/Python (postgresql-plpython3-$PG_MAJOR),
#     pg_cron (postgresql-$PG_MAJOR-cron) from Debian's packages;
#   - numpy and onnxruntime in the *server's* Python (Debian's /usr/bin/python3, the one
#     PL/Python embeds), which is not the project's Python; croniter there too, with which
#     indb.schedule computes a job's next run (sql/postgres/jobs.sql; without it next_run is NULL);
#   - what indb's own Python needs to run job actions inside the server (ingest,
#     rebuild_training_set, retrain, ...: sql/postgres/server_python.sql): pandas, pyarrow,
#     sqlglot, onnx, scikit-learn, skl2onnx, psycopg, at the versions pinned below. indb itself
#     is not installed there: the superuser's client ships its own code into the catalog at
#     install (indb.server_package()), so the server always runs the indb that installed it.
# Idempotent: when everything is present it only checks and exits (well under a second).
# Works as root (CI) or through passwordless sudo; never reads stdin.
#
#   bash .ci/install_postgres.sh            # install what is missing
#   INDB_PG_MAJOR=16 bash .ci/install_postgres.sh
set -euo pipefail

PG_MAJOR="${INDB_PG_MAJOR:-15}"
SERVER_PYTHON="${INDB_SERVER_PYTHON:-/usr/bin/python3}"
PY_PACKAGES=(numpy onnxruntime croniter)
# indb's Python in the server (job actions): distribution==version, checked by version. The same
# versions as the project's tested environment; INDB_SERVER_PY_PINS="..." overrides the list.
read -r -a PY_PINS <<<"${INDB_SERVER_PY_PINS:-pandas==3.1.1 pyarrow==26.0.1 sqlglot==30.30.0 onnx==1.23.2 scikit-learn==1.9.1 skl2onnx==1.20.0 psycopg[binary]==3.3.9}"
APT_PACKAGES=(
    "postgresql-${PG_MAJOR}"
    "postgresql-plpython3-${PG_MAJOR}"
    "postgresql-${PG_MAJOR}-cron"
)

export DEBIAN_FRONTEND=noninteractive
# Keep pip from prompting, and quiet about running as root into the system Python.
export PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '[install_postgres] %s\n' "$*"; }

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n -E)
else
    SUDO=(__not_root__)
fi
as_root() {
    if [[ ${SUDO[0]:-} == __not_root__ ]]; then
        say "ERROR: need root (or passwordless sudo) to run: $*" >&2
        exit 1
    fi
    "${SUDO[@]}" "$@"
}

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    say "ERROR: this script installs with apt (Debian/Ubuntu). Install PostgreSQL >= ${PG_MAJOR}" >&2
    say "with PL/Python and pg_cron yourself, or point the tests at a server with" >&2
    say "INDB_TEST_PG_DSN=postgresql://user@host:port/db" >&2
    exit 1
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

APT_UPDATED=0
apt_install() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    say "apt-get install: $*"
    # Keep existing config files if a package upgrade meets a changed one; never prompt.
    as_root apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        </dev/null
}

# --- 1. Debian packages ------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if is_installed "$pkg"; then
        say "ok: $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
    else
        missing+=("$pkg")
    fi
done
if [[ ! -x $SERVER_PYTHON ]]; then
    missing+=(python3)
fi
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
    for pkg in "${missing[@]}"; do
        say "installed: $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
    done
fi

BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
for tool in initdb pg_ctl postgres; do
    if [[ ! -x $BIN/$tool ]]; then
        say "ERROR: $BIN/$tool missing after install" >&2
        exit 1
    fi
done

# --- 2. Python packages in the server's Python -------------------------------------------------
# PL/Python runs the interpreter its shared library was built against; on Debian 12 that is
# /usr/bin/python3 (3.11), and packages go to /usr/local/lib/python3.X/dist-packages, which is
# on that interpreter's path (and so on PL/Python's).
py_check() {
    "$SERVER_PYTHON" - "$@" <<'EOF' 2>/dev/null
import importlib, sys
for name in sys.argv[1:]:
    mod = importlib.import_module(name)
    print(f"{name} {getattr(mod, '__version__', '?')}")
EOF
}

missing_py=()
for pkg in "${PY_PACKAGES[@]}"; do
    if version=$(py_check "$pkg"); then
        say "ok: server python ($SERVER_PYTHON): $version"
    else
        missing_py+=("$pkg")
    fi
done
# pinned distributions: installed at exactly that version (importlib.metadata, no import)
for pin in "${PY_PINS[@]}"; do
    dist="${pin%%==*}"
    dist="${dist%%\[*}"
    want="${pin##*==}"
    have=$("$SERVER_PYTHON" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$dist" 2>/dev/null || true)
    if [[ $have == "$want" ]]; then
        say "ok: server python ($SERVER_PYTHON): $dist $have"
    else
        missing_py+=("$pin")
    fi
done
if ((${#missing_py[@]})); then
    if ! "$SERVER_PYTHON" -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    say "pip install into $SERVER_PYTHON: ${missing_py[*]}"
    # --break-system-packages: Debian marks its Python as externally managed (PEP 668).
    # --only-binary: a source build of these would need a compiler and take far too long.
    as_root "$SERVER_PYTHON" -m pip install --quiet --break-system-packages \
        --only-binary=:all: "${missing_py[@]}" </dev/null
    # The real check: all import, and onnxruntime's native library loads.
    if ! "$SERVER_PYTHON" - <<'EOF'
import numpy, onnxruntime, pandas, pyarrow, sqlglot, onnx, sklearn, skl2onnx, psycopg
print("[install_postgres] installed: server python: numpy", numpy.__version__,
      "onnxruntime", onnxruntime.__version__, "pandas", pandas.__version__,
      "sqlglot", sqlglot.__version__, "scikit-learn", sklearn.__version__,
      "providers", onnxruntime.get_available_providers())
EOF
    then
        say "ERROR: the server's packages do not import in $SERVER_PYTHON after install" >&2
        exit 1
    fi
fi

say "done: PostgreSQL ${PG_MAJOR} binaries in $BIN"

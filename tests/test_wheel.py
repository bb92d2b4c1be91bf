"""The built wheel holds every Python and SQL file of the source tree (issue 10.9).

An editable install imports straight from the folders, so a package missing from the wheel
(``indb.udfs.compiler`` was) goes unnoticed until someone runs ``pip install .``. This builds
the wheel from a clean copy of the tree (no stale ``build/``) and compares file lists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Source folder -> where its files sit inside the wheel.
FOLDERS = {"engine": "indb", "udfs": "indb/udfs", "feature_store": "indb/feature_store", "sql": "indb/sql"}


def _source_files() -> set[str]:
    expected = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                relative = path.relative_to(ROOT / folder).as_posix()
                # engine/udfs does not exist, but keep the mapping exact: a file belongs to the
                # most specific source folder only.
                expected.add(f"{package}/{relative}")
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (found,) = out.glob("indb-*.whl")
    return found


def test_wheel_holds_every_python_and_sql_file(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if n.endswith((".py", ".sql"))}
    expected = _source_files()
    assert "indb/udfs/compiler/compile.py" in expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel leaves out {missing}"
    assert not sorted(names - expected), "the wheel holds files that are not in the source tree"


def test_every_source_folder_is_a_package_of_the_wheel(wheel):
    """A new subpackage of engine/ is picked up without being listed."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    folders = {str(Path(n).parent) for n in names if n.endswith(".py")}
    for folder, package in FOLDERS.items():
        for sub in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in sub.parts:
                continue
            relative = sub.parent.relative_to(ROOT / folder).as_posix()
            assert str(Path(package, relative)) in folders

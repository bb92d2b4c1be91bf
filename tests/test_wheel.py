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


def _source_files(root: Path) -> set[str]:
    expected = set()
    for folder, package in FOLDERS.items():
        for path in (root / folder).rglob("*"):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                expected.add(f"{package}/{path.relative_to(root / folder).as_posix()}")
    return expected


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the source tree, plus a new subpackage and SQL folder nothing lists."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "engine" / "indb_probe" / "deeper").mkdir(parents=True)
    (tree / "engine" / "indb_probe" / "__init__.py").write_text("")
    (tree / "engine" / "indb_probe" / "deeper" / "__init__.py").write_text("")
    (tree / "engine" / "indb_probe" / "deeper" / "probe.sql").write_text("SELECT 1;\n")
    (tree / "sql" / "indb_probe").mkdir()
    (tree / "sql" / "indb_probe" / "probe.sql").write_text("SELECT 1;\n")
    return tree


@pytest.fixture(scope="module")
def wheel(tree, tmp_path_factory) -> Path:
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


def test_wheel_holds_every_python_and_sql_file(tree, wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if n.endswith((".py", ".sql"))}
    expected = _source_files(tree)
    assert {"indb/udfs/compiler/compile.py", "indb/indb_probe/deeper/probe.sql"} <= expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel leaves out {missing}"
    assert not sorted(names - expected), "the wheel holds files that are not in the source tree"


def test_every_source_folder_is_a_package_of_the_wheel(tree, wheel):
    """A new subpackage of engine/ (indb_probe, only in the copy) is picked up unlisted."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    folders = {str(Path(n).parent) for n in names if n.endswith(".py")}
    for folder, package in FOLDERS.items():
        for sub in (tree / folder).rglob("__init__.py"):
            if "__pycache__" in sub.parts:
                continue
            relative = sub.parent.relative_to(tree / folder).as_posix()
            assert str(Path(package, relative)) in folders

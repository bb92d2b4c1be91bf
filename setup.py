"""Finds the packages below the folders pyproject.toml maps; everything else is in pyproject.toml.

pyproject.toml maps each top folder to its package with ``package-dir`` (indb = engine/,
indb.udfs = udfs/, indb.feature_store = feature_store/, indb.sql = sql/). Its declarative
``packages.find`` cannot give the folders below them those names (it would name them
``engine.backends``), so this finds every folder below each mapped one and names it after the
mapping: a new subpackage (or a folder of SQL files) is in the wheel without being listed.
"""

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
ROOTS = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        below = find_namespace_packages(str(HERE / folder), exclude=["__pycache__", "*.__pycache__"])
        found += [f"{name}.{sub}" for sub in below if f"{name}.{sub}" not in ROOTS]
    return found


setup(packages=packages())

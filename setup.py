"""Which folders become which packages; everything else is in pyproject.toml.

pyproject.toml cannot say "every subpackage of engine/, named indb.*": setuptools' declarative
``packages.find`` names packages after their folders (``engine.backends``). Here each top folder is
mapped to its package name and every folder below it is found, so a new subpackage (or a folder of
SQL files) is in the wheel without being listed anywhere.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {"indb": "engine", "indb.udfs": "udfs", "indb.feature_store": "feature_store", "indb.sql": "sql"}


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        below = find_namespace_packages(folder, exclude=["__pycache__", "*.__pycache__"])
        found += [f"{name}.{sub}" for sub in below if f"{name}.{sub}" not in ROOTS]
    return found


setup(packages=packages(), package_dir=ROOTS)

"""Compiled SQL of the same model for DuckDB and for PostgreSQL: bytes, compile time, peak memory.

Five scikit-learn pipelines like orbital's own test pipelines:
``gb_onehot``  StandardScaler + OneHotEncoder (ColumnTransformer) -> GradientBoostingClassifier,
               binary, 4 numeric and 1 categorical column;
``gb_3class``  StandardScaler -> GradientBoostingClassifier on iris (3 classes);
``pca_gb_2``   StandardScaler -> PCA(3) -> GradientBoostingClassifier, iris as binary;
``pca_gb_3``   StandardScaler -> PCA(3) -> GradientBoostingClassifier on iris (3 classes);
``mlp``        StandardScaler -> MLPClassifier((64, 32)) on load_breast_cancer.
GradientBoostingClassifier has scikit-learn's defaults (100 trees, depth 3).

Each model is registered in an in-memory DuckDB database, then ``db.compile_sql(name,
dialect=d)`` (compile the ONNX graph, render the prediction and probability array) runs for
``duckdb`` and for ``postgres``: the second is PostgreSQL text rendered from a DuckDB database,
one self-contained expression per output (no helper functions). ``pg_funcs`` is the size of
the PostgreSQL form a deployment installs (``CompiledModel.size("postgres")``: the expressions
and the PL/pgSQL helper functions that compute shared values). Each (model, dialect) runs in a
subprocess of its own that the parent watches: over ``--memory-mb`` of resident memory or
``--seconds`` it is killed and reported as stopped, not waited for. The child resets its peak
resident size after fitting and registering (``/proc/self/clear_refs``), so "peak MB" is the
process's high-water mark during compile + render (imports and the fitted model included in the
resident base, not in the growth shown).

    python benchmarks/compiled_sql_sizes.py [--models gb_onehot,mlp] [--memory-mb 1024] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ["gb_onehot", "gb_3class", "pca_gb_2", "pca_gb_3", "mlp"]
DIALECTS = ["duckdb", "postgres", "pg_funcs"]


def build(name: str):
    """(fitted pipeline, training frame) for ``name``."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if name == "mlp":
        data = load_breast_cancer(as_frame=True)
        x = data.data.rename(columns=lambda c: c.replace(" ", "_"))
        model = make_pipeline(StandardScaler(), MLPClassifier((64, 32), max_iter=300, random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(x, data.target), x
    iris = load_iris(as_frame=True)
    x = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    y = iris.target
    if name == "gb_onehot":
        rng = np.random.default_rng(0)
        x = x.assign(colour=pd.Series(rng.choice(["red", "green", "blue", "grey"], len(x))))
        y = (y == 2).astype(int) ^ (x["colour"] == "red").astype(int)
        encode = ColumnTransformer(
            [
                ("numbers", StandardScaler(), list(x.columns[:4])),
                ("strings", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
            ]
        )
        model = Pipeline([("encode", encode), ("gb", GradientBoostingClassifier(random_state=0))])
    elif name in ("gb_3class",):
        model = make_pipeline(StandardScaler(), GradientBoostingClassifier(random_state=0))
    else:
        if name == "pca_gb_2":
            y = (y == 2).astype(int)
        model = make_pipeline(StandardScaler(), PCA(3), GradientBoostingClassifier(random_state=0))
    return model.fit(x, y), x


def _status(field: str, pid: str = "self") -> int:
    """A VmXXX line of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(name: str, dialect: str) -> None:
    sys.path.insert(0, str(REPO))
    import indb

    model, x = build(name)
    db = indb.connect("duckdb:///:memory:")
    db.register_model(name, model, sample=x)
    base = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    start = time.perf_counter()
    if dialect == "pg_funcs":  # as deployed on PostgreSQL: the expressions and their helper functions
        from indb.compiled import compile_version

        size = compile_version(db.get_model(name)).size("postgres")
    else:
        size = len(db.compile_sql(name, dialect=dialect))
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    print(json.dumps({"bytes": size, "seconds": seconds, "base_mb": base / 1024, "peak_mb": peak / 1024}))


def watch(name: str, dialect: str, memory_mb: float, seconds: float) -> dict:
    """Run one (model, dialect) in a child; kill it past the limits."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", name, dialect],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start, peak = time.monotonic(), 0.0
    while process.poll() is None:
        try:
            peak = max(peak, _status("VmRSS", str(process.pid)) / 1024)
        except OSError:
            pass
        elapsed = time.monotonic() - start
        if peak > memory_mb or elapsed > seconds:
            process.kill()
            process.wait()
            why = f"over {memory_mb:.0f} MB" if peak > memory_mb else f"over {seconds:.0f} s"
            return {"stopped": f"{why} (rss {peak:.0f} MB after {elapsed:.1f} s)"}
        time.sleep(0.05)
    out, err = process.communicate()
    if process.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {process.returncode}"}
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--memory-mb", type=float, default=2048.0, help="kill a child above this RSS")
    parser.add_argument("--seconds", type=float, default=60.0, help="kill a child after this long")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    limits = f"limits {args.memory_mb:.0f} MB, {args.seconds:.0f} s"
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {limits}")
    results = {}
    header = f"{'model':<10} {'dialect':<9} {'bytes':>12} {'compile s':>10} {'peak MB':>9} {'growth MB':>10}"
    print(header)
    for name in args.models.split(","):
        results[name] = {}
        for dialect in DIALECTS:
            r = results[name][dialect] = watch(name, dialect, args.memory_mb, args.seconds)
            if "bytes" in r:
                growth = r["peak_mb"] - r["base_mb"]
                row = f"{r['bytes']:>12,} {r['seconds']:>10.2f} {r['peak_mb']:>9.0f} {growth:>10.0f}"
            else:
                row = r.get("stopped") or r["error"]
            print(f"{name:<10} {dialect:<9} {row}", flush=True)
        sizes = [results[name][d].get("bytes") for d in DIALECTS]
        for d, size in zip(DIALECTS[1:], sizes[1:], strict=True):
            if size and sizes[0]:
                print(f"{name:<10} {d} / duckdb = {size / sizes[0]:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()

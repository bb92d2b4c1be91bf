"""Binary SVC(probability=True) compiled to SQL (issue 17): how far its probabilities are from
onnxruntime's and from scikit-learn's.

(1) Two scikit-learn pipelines (StandardScaler + SVC(probability=True), rbf and linear
kernels) fitted on 300 loan rows, scored over ``--rows`` loan rows (plus rows with 1e15 and
-1e15 in each column) by the compiled SQL in DuckDB (``indb.compiled.evaluate``), by
onnxruntime and by ``predict_proba``: label mismatches and max |difference| of the
probabilities. scikit-learn's bundled libsvm runs the same pairwise coupling as onnxruntime for
two classes, in double instead of float32.

(2) A one-feature SVMClassifier whose decision value is its input: ``--values`` decision
values (every float32 with |x| <= 40 at an even stride, with their negatives, 300 values
either side of each boundary of the coupling's rounds, and extremes up to 3e38), SQL in DuckDB
against onnxruntime, for prob_a/prob_b (1, 0) and (-2.29, -0.085); also against Platt's
probability in double without the coupling (how far the coupling moves it).

(3) ``--exhaustive``: every float32 pairwise probability in [1e-7, 1 - 1e-7] (196M values)
through the coupling's own arithmetic in numpy (``svm_coupling.NumpyOps``, the code that builds
the SQL): the number that stop after 0, 1 and 2 rounds, and that none needs a third.

Prints a table and one ``RESULT {json}`` line.

    python benchmarks/svc_probability.py [--rows 100000] [--values 1000000] [--exhaustive]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import indb  # noqa: E402
from indb.compiled import compile_version, evaluate  # noqa: E402
from indb.udfs import convert, sessions  # noqa: E402
from indb.udfs.compiler import svm_coupling  # noqa: E402
from tests.conftest import NUMERIC, loan_frame  # noqa: E402
from tests.test_svm_probability import BOUNDARIES, _decision_value_model, _ulps_around  # noqa: E402

F = np.float32


def platt(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """Platt's two-class probabilities in double, without the coupling."""
    value = x * a + b
    first = np.where(value >= 0, np.exp(-value) / (1 + np.exp(-value)), 1 / (1 + np.exp(value)))
    first = np.clip(first, 1e-7, 1 - 1e-7)
    return np.stack([first, 1 - first], axis=1)


def _compare(db, name: str, rows: pd.DataFrame, sklearn_model=None, reference=None) -> dict:
    mv = db.get_model(name)
    compiled = compile_version(mv)
    started = time.perf_counter()
    got = evaluate(db.backend, compiled, rows)
    seconds = time.perf_counter() - started
    labels, theirs = sessions.build(mv.onnx).run(None, convert.feeds(mv.signature, rows))
    ours = got[[f"o{i + 1}" for i in range(len(compiled.probabilities))]].to_numpy(dtype=float)
    result = {
        "rows": len(rows),
        "sql_seconds": round(seconds, 2),
        "label_mismatches_onnxruntime": int(
            sum(str(a) != str(b) for a, b in zip(got.o0, labels, strict=True))
        ),
        "max_diff_onnxruntime": float(np.abs(ours - theirs).max()),
    }
    if sklearn_model is not None:
        expected = sklearn_model.predict_proba(rows)
        result["max_diff_sklearn"] = float(np.abs(ours - expected).max())
        result["max_diff_onnxruntime_vs_sklearn"] = float(np.abs(theirs - expected).max())
        result["label_mismatches_sklearn"] = int((sklearn_model.predict(rows) != got.o0.to_numpy()).sum())
    if reference is not None:
        result["max_diff_platt_double"] = float(np.abs(ours - reference).max())
    return result


def sklearn_models(db, rows: int) -> dict:
    from sklearn import svm
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = loan_frame(300, seed=21)
    extremes = pd.DataFrame(
        [{**train[NUMERIC].iloc[0].to_dict(), c: v} for c in NUMERIC for v in (1e15, -1e15)]
    )
    data = pd.concat([loan_frame(rows, seed=33)[NUMERIC], extremes], ignore_index=True)
    data["age"] = data["age"].round().astype("int64")
    results = {}
    for kernel in ("rbf", "linear"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = make_pipeline(StandardScaler(), svm.SVC(kernel=kernel, probability=True, random_state=0))
            model.fit(train[NUMERIC], train.label)
            db.register_model(f"svc_{kernel}", model, sample=train[NUMERIC])
            results[f"svc_{kernel}"] = _compare(db, f"svc_{kernel}", data, model)
    return results


def decision_values(count: int) -> np.ndarray:
    top = int(np.asarray(F(40)).view(np.int32))
    stride = max(1, top // max(1, count // 2))
    grid = np.arange(0, top, stride, dtype=np.int32).view(F)
    boundaries = [_ulps_around(np.log((1 - b) / b), 300) for b in BOUNDARIES]
    extremes = np.array([1e-30, 16.6, 17.0, 69.0, 88.0, 104.0, 1e4, 1e30, 3e38], dtype=F)
    values = np.concatenate([grid, -grid, *boundaries, extremes, -extremes])
    return values.astype(np.float64)


def decision_value_models(db, count: int) -> dict:
    rows = pd.DataFrame({"x": decision_values(count)})
    results = {}
    for a, b in ((1.0, 0.0), (-2.2903042, -0.085154)):
        name = f"decision_{len(results)}"
        db.register_model(name, _decision_value_model(a, b).SerializeToString(), sample=rows.head(50))
        with np.errstate(all="ignore"):
            reference = platt(rows.x.to_numpy(), a, b)
        results[f"prob_a={a} prob_b={b}"] = _compare(db, name, rows, reference=reference)
    return results


def exhaustive() -> dict:
    low, high = (int(v) for v in np.asarray([F(svm_coupling.LOW), F(svm_coupling.HIGH)]).view(np.int32))
    stopped = [0, 0, 0]
    third = 0
    for start in range(low, high + 1, 10_000_000):
        r = np.arange(start, min(start + 10_000_000, high + 1), dtype=np.int32).view(F)
        settled = [svm_coupling.couple(r, svm_coupling.NumpyOps, rounds=k)[2] for k in range(3)]
        stopped[0] += int(settled[0].sum())
        stopped[1] += int((settled[1] & ~settled[0]).sum())
        stopped[2] += int((settled[2] & ~settled[1]).sum())
        third += int((~settled[2]).sum())
    return {
        "values": high - low + 1,
        "rounds_0": stopped[0],
        "rounds_1": stopped[1],
        "rounds_2": stopped[2],
        "need_a_third": third,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--exhaustive", action="store_true")
    args = parser.parse_args()
    result = {}
    with indb.connect() as db:
        result["sklearn"] = sklearn_models(db, args.rows)
        result["decision_values"] = decision_value_models(db, args.values)
    if args.exhaustive:
        result["exhaustive"] = exhaustive()
    for group, rows in result.items():
        print(f"== {group}")
        for name, figures in rows.items() if group != "exhaustive" else [("all", rows)]:
            print(
                f"  {name}: "
                + ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
                )
            )
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

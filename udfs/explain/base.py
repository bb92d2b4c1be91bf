"""The result type and the base class every explainer shares (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from indb.errors import IndbError


class ExplainError(IndbError, ValueError):
    """A model or a frame that cannot be explained; the message says what was wrong."""


def _checked(values: pd.Series, spec, allow_nan: bool) -> pd.Series:
    """A column of the rows to explain, refused as scoring refuses it: wrong types, NULLs
    where the model takes none, NaN or infinity unless the model was registered for them."""
    present = values.dropna()
    if spec.onnx_type == "string":
        wrong = [v for v in present if not isinstance(v, str)]
        if wrong:
            raise ExplainError(f"input column {spec.name!r} holds {wrong[0]!r}; it needs VARCHAR values")
    else:
        try:
            values = pd.to_numeric(values) if values.dtype == object else values
            if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                raise ValueError
        except (ValueError, TypeError):
            raise ExplainError(
                f"input column {spec.name!r} holds {present.iloc[0]!r}; it needs {spec.sql_type} values"
            ) from None
        if np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan)).any() and not allow_nan:
            raise ExplainError(
                f"input column {spec.name!r} is infinite in some rows; it needs finite {spec.sql_type} "
                "values (register the model with allow_nan=True if it expects them)"
            )
    if len(present) < len(values) and not (spec.nullable or allow_nan):
        raise ExplainError(
            f"input column {spec.name!r} is NULL or NaN in {len(values) - len(present)} row(s); "
            f"it needs a {spec.sql_type} value"
        )
    return values


@dataclass(frozen=True)
class Explanation:
    """Contributions of the input columns to one raw output per row.

    ``base + contributions.sum(axis=1)`` is the raw output ``output`` names (to 1e-6 for
    exact methods; by construction, up to rounding, for sampling too). ``error`` is the
    per-row standard error of an approximate method (None when ``exact``). ``target``: the
    class each row explains (classifiers), else None.
    """

    base: np.ndarray  # (n,)
    contributions: np.ndarray  # (n, k)
    features: list[str]  # k input columns
    output: str  # e.g. "log-odds of class 'repaid'", "value"
    exact: bool
    error: np.ndarray | None = None  # (n,)
    target: np.ndarray | None = None  # (n,) class labels
    method: str = ""

    @property
    def raw(self) -> np.ndarray:
        """The raw output each row: base plus the contributions."""
        return self.base + self.contributions.sum(axis=1)

    def long(self) -> pd.DataFrame:
        """One row per (row, feature): ``row``, ``feature``, ``contribution``."""
        n, k = self.contributions.shape
        return pd.DataFrame(
            {
                "row": np.repeat(np.arange(n), k),
                "feature": np.tile(np.array(self.features, dtype=object), n),
                "contribution": self.contributions.ravel(),
            }
        )


@dataclass(frozen=True)
class Scores:
    """What an explainer computes for a frame, on a class axis of T raw outputs."""

    base: np.ndarray  # (T,) or (n, T)
    contributions: np.ndarray  # (n, k, T)
    error: np.ndarray | None = None  # (n, T)


class Explainer:
    """Explains one model version. Subclasses set the attributes and implement :meth:`scores`.

    ``targets``: the labels of the T raw outputs (class labels, or ["value"]); ``kind``: what
    the raw output is, e.g. "log-odds"; ``default``: the target explained when none is asked
    ("predicted" for three or more classes).
    """

    method = ""
    exact = True

    def __init__(self, features: list[str], targets: list, kind: str, default):
        self.features = list(features)
        self.targets = list(targets)
        self.kind = kind
        self.default = default

    def scores(self, frame: pd.DataFrame) -> Scores:
        raise NotImplementedError

    def _check(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise ExplainError(f"explain takes a pandas DataFrame of input rows, got {type(frame).__name__}")
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ExplainError(
                f"the rows to explain lack input column(s) {missing}; the model takes {self.features}"
            )
        frame = frame[self.features].reset_index(drop=True)
        signature = getattr(self, "signature", None)
        for spec in signature.inputs if signature is not None else ():
            frame[spec.name] = _checked(frame[spec.name], spec, signature.allow_nan)
        return frame

    def _label(self, target) -> str:
        if target == "value":
            return self.kind
        return f"{self.kind} of class {target!r}"

    def explain(self, frame: pd.DataFrame, target=None) -> Explanation:
        """Contributions to one raw output per row: ``target`` (a class), or the default."""
        frame = self._check(frame)
        return self._select(self._scores(frame), len(frame), target)

    def explain_all(self, frame: pd.DataFrame) -> dict:
        """One Explanation per raw output (class), keyed by its target."""
        frame = self._check(frame)
        found = self._scores(frame)
        return {t: self._select(found, len(frame), t) for t in self.targets}

    def _scores(self, frame: pd.DataFrame) -> Scores:
        if len(frame):
            return self.scores(frame)
        width = len(self.targets)
        error = None if self.exact else np.zeros((0, width))
        return Scores(np.zeros(width), np.zeros((0, len(self.features), width)), error)

    def _select(self, found: Scores, n: int, target) -> Explanation:
        base = np.broadcast_to(found.base, (n, len(self.targets)))
        target = self.default if target is None else target
        if target == "predicted":
            raw = base + found.contributions.sum(axis=1)
            pick = np.argmax(raw, axis=1)
            output = f"{self.kind} of the predicted class"
        else:
            if target not in self.targets:
                raise ExplainError(f"target {target!r} is not one of the model's outputs {self.targets}")
            pick = np.full(n, self.targets.index(target))
            output = self._label(target)
        rows = np.arange(n)
        labels = np.array(self.targets, dtype=object)[pick] if self.targets != ["value"] else None
        return Explanation(
            base=np.ascontiguousarray(base[rows, pick], dtype=np.float64),
            contributions=np.ascontiguousarray(found.contributions[rows, :, pick], dtype=np.float64),
            features=list(self.features),
            output=output,
            exact=self.exact,
            error=None if found.error is None else found.error[rows, pick],
            target=labels,
            method=self.method,
        )


def default_target(targets: list):
    """What :meth:`Explainer.explain` explains unless asked: the one output, the positive
    class of two, or the predicted class of three or more."""
    if len(targets) == 1:
        return targets[0]
    return targets[1] if len(targets) == 2 else "predicted"


def class_targets(classes, count: int) -> list:
    """Targets of ``count`` raw scores of a model over ``classes``: one score for two classes
    is the positive class's."""
    classes = list(classes or [])
    if count == 1:
        return [classes[-1]] if len(classes) == 2 else ["value"]
    if len(classes) != count:
        raise ExplainError(f"the model gives {count} scores for {len(classes)} classes")
    return classes

"""ai.onnx.ml operators: linear models, scalers, encoders, tree ensembles."""

from __future__ import annotations

import numpy as np
from sqlglot import exp

from indb.udfs.compiler import sql
from indb.udfs.compiler.svm import svm_classifier, svm_regressor
from indb.udfs.compiler.trees import tree_ensemble
from indb.udfs.compiler.values import Value, apply, materialize


def post_transform(scores: list, kind: str, share=lambda e: e) -> list:
    from indb.udfs.compiler.compile import UnsupportedOperator, softmax

    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "NONE":
        return scores
    if kind == "LOGISTIC":
        return [sql.sigmoid(s) for s in scores]
    if kind == "SOFTMAX":
        return softmax(scores, share)
    raise UnsupportedOperator(f"post_transform {kind}")


def _lookup(keys: list, targets: list, default):
    """A function mapping one element through ``keys -> targets`` (else ``default``)."""
    table = dict(zip(keys, targets, strict=True))

    def lookup(x):
        if sql.is_const(x):
            return table.get(x, default)
        case = exp.Case()
        for key, target in table.items():
            case = case.when(sql.compare("=", x, key), sql.lit(target))
        return case.else_(sql.lit(default))

    return lookup


def _strings(values) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


class MLOperators:
    def visit_LinearRegressor(self, node, values, attrs):
        row = materialize(values[0]).data
        coefficients = np.array(attrs["coefficients"], dtype=np.float64)
        targets = attrs.get("targets", 1)
        intercepts = attrs.get("intercepts", [0.0] * targets)
        weights = coefficients.reshape(targets, -1)
        scores = [sql.add(self._dot(row, weights[t]), float(intercepts[t])) for t in range(targets)]
        return [
            Value(np.array(post_transform(scores, attrs.get("post_transform", "NONE")), dtype=object), True)
        ]

    def visit_LinearClassifier(self, node, values, attrs):
        row = materialize(values[0]).data
        labels = attrs.get("classlabels_ints") or _strings(attrs.get("classlabels_strings", []))
        intercepts = attrs.get("intercepts", [])
        weights = np.array(attrs["coefficients"], dtype=np.float64).reshape(len(intercepts), -1)
        scores = [
            self.share(sql.add(self._dot(row, weights[t]), float(intercepts[t])))
            for t in range(len(intercepts))
        ]
        kind = attrs.get("post_transform", "NONE")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if len(scores) == 1 and len(labels) == 2:
            # One score for two classes: onnxruntime reports (1 - p, p) after LOGISTIC, (-s, s) else.
            score = scores[0]
            if kind == "LOGISTIC":
                positive = sql.sigmoid(score)
                scores, kind = [sql.sub(1.0, positive), positive], "NONE"
            else:
                scores = [sql.neg(score), score]
        from indb.udfs.compiler.compile import argmax

        probabilities = [self.share(p) for p in post_transform(scores, kind, self.share)]
        label = self._label(argmax(probabilities), labels)
        return [
            Value(np.array(label, dtype=object), True),
            Value(np.array(probabilities, dtype=object), True),
        ]

    @staticmethod
    def _label(index, labels):
        if sql.is_const(index):
            return labels[index]
        case = exp.Case()
        for i, label in enumerate(labels[:-1]):
            case = case.when(exp.EQ(this=sql.lit(index), expression=sql.lit(i)), sql.lit(label))
        return case.else_(sql.lit(labels[-1]))

    def visit_Scaler(self, node, values, attrs):
        value = materialize(values[0])
        offset = np.array(attrs.get("offset", [0.0]), dtype=np.float64)
        scale = np.array(attrs.get("scale", [1.0]), dtype=np.float64)
        width = value.data.shape[-1]
        offset = np.broadcast_to(offset, (width,))
        scale = np.broadcast_to(scale, (width,))
        data = np.array(
            [
                sql.mul(sql.sub(x, float(o)), float(s))
                for x, o, s in zip(value.data, offset, scale, strict=True)
            ],
            dtype=object,
        )
        return [Value(data, True)]

    def visit_Imputer(self, node, values, attrs):
        value = materialize(values[0])
        fills = attrs.get("imputed_value_floats") or attrs.get("imputed_value_int64s")
        replaced = attrs.get("replaced_value_float", attrs.get("replaced_value_int64"))
        width = value.data.shape[-1]
        fills = list(np.broadcast_to(np.array(fills), (width,)))

        def impute(x, fill):
            if sql.is_const(x):
                return x
            missing = exp.Is(this=x, expression=exp.Null())
            if replaced is not None and not np.isnan(replaced):
                missing = exp.Or(this=missing, expression=sql.compare("=", x, float(replaced)))
            elif replaced is not None:  # NaN: NULL in SQL, or a stored NaN
                missing = exp.Or(this=missing, expression=sql.compare("=", x, float("nan")))
            return sql.case(missing, float(fill), x)

        return [
            Value(
                np.array([impute(x, f) for x, f in zip(value.data, fills, strict=True)], dtype=object), True
            )
        ]

    def visit_Normalizer(self, node, values, attrs):
        value = materialize(values[0])
        norm = attrs.get("norm", b"MAX")
        norm = norm.decode() if isinstance(norm, bytes) else norm
        row = list(value.data)
        if norm == "L2":
            size = self.share(sql.func("sqrt", sql.total([sql.mul(x, x) for x in row]), np.sqrt))
        elif norm == "L1":
            size = self.share(sql.total([sql.func("abs", x, abs) for x in row]))
        else:
            from indb.udfs.compiler.compile import greatest

            size = self.share(greatest([sql.func("abs", x, abs) for x in row]))
        return [Value(np.array([sql.div(x, size) for x in row], dtype=object), True)]

    def visit_Binarizer(self, node, values, attrs):
        threshold = float(attrs.get("threshold", 0.0))
        value = materialize(values[0])
        data = np.array(
            [sql.case(sql.compare(">", x, threshold), 1.0, 0.0) for x in value.data.ravel()], dtype=object
        )
        return [Value(data.reshape(value.data.shape), value.batched)]

    def visit_OneHotEncoder(self, node, values, attrs):
        value = values[0]
        categories = attrs.get("cats_int64s") or _strings(attrs.get("cats_strings", []))
        data = np.empty(value.data.shape + (len(categories),), dtype=object)
        for index, x in np.ndenumerate(value.data):
            for c, category in enumerate(categories):
                data[index + (c,)] = sql.case(sql.compare("=", x, category), 1.0, 0.0)
        return [Value(data, value.batched)]

    def visit_LabelEncoder(self, node, values, attrs):
        keys = attrs.get("keys_strings") or attrs.get("keys_int64s") or attrs.get("keys_floats")
        targets = attrs.get("values_strings") or attrs.get("values_int64s") or attrs.get("values_floats")
        default = attrs.get("default_string", attrs.get("default_int64", attrs.get("default_float", -1)))
        keys, targets = _strings(keys), _strings(targets)
        default = default.decode() if isinstance(default, bytes) else default

        value = values[0]
        return [Value(apply(_lookup(keys, targets, default), value.data), value.batched)]

    def visit_ArrayFeatureExtractor(self, node, values, attrs):
        data, indices = values
        if not indices.batched:
            picks = indices.numbers().astype(int).ravel()
            if data.batched:
                return [Value(np.take(data.data, picks, axis=-1), True, data.rounded32)]
            return [Value(np.take(data.data, picks, axis=-1), False)]
        if data.batched:
            from indb.udfs.compiler.compile import UnsupportedOperator

            raise UnsupportedOperator("ArrayFeatureExtractor with both data and indices per row")
        labels = list(data.data.ravel())
        picked = apply(lambda i: self._label(i, labels), indices.data)
        return [Value(picked, True)]

    def visit_ZipMap(self, node, values, attrs):
        return [values[0]]

    def visit_FeatureVectorizer(self, node, values, attrs):
        """Inputs side by side, each cut or zero-padded to its ``inputdimensions``; the output
        is float, so later arithmetic rounds it to float32."""
        widths = list(attrs.get("inputdimensions") or [None] * len(values))
        rows = []
        for value, width in zip(values, widths, strict=True):
            row = list(materialize(value).data.reshape(-1))
            width = len(row) if width is None else int(width)
            rows.extend(row[:width] + [0.0] * (width - len(row)))
        return [Value(np.array(rows, dtype=object), True, rounded32=True)]

    def visit_CategoryMapper(self, node, values, attrs):
        """Strings to integers, or integers to strings, through two parallel lists."""
        strings = _strings(attrs.get("cats_strings", []))
        numbers = list(attrs.get("cats_int64s", []))
        value = values[0]
        text = {i.onnx_name for i in self.signature.inputs if i.onnx_type == "string"}
        if node.input[0] in text or any(isinstance(x, str) for x in value.data.ravel()):
            keys, targets, default = strings, numbers, attrs.get("default_int64", -1)
        else:
            keys, targets, default = numbers, strings, attrs.get("default_string", b"_Unused")
        default = default.decode() if isinstance(default, bytes) else default

        return [Value(apply(_lookup(keys, targets, default), value.data), value.batched)]

    def visit_TreeEnsembleRegressor(self, node, values, attrs):
        scores = [self.share(s) for s in tree_ensemble(values[0], attrs, regressor=True)]
        kind = attrs.get("post_transform", "NONE")
        return [Value(np.array(post_transform(scores, kind, self.share), dtype=object), True)]

    def visit_TreeEnsembleClassifier(self, node, values, attrs):
        from indb.udfs.compiler.compile import argmax

        labels = attrs.get("classlabels_int64s") or _strings(attrs.get("classlabels_strings", []))
        scores = [
            self.share(s) for s in tree_ensemble(values[0], attrs, regressor=False, classes=len(labels))
        ]
        kind = attrs.get("post_transform", "NONE")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        label = None
        if len(labels) == 2 and len(scores) == 1:
            # onnxruntime's binary case: the raw score against 0.5 when every weight is
            # positive (averaged votes), else against 0 (boosted margins).
            score = scores[0]
            threshold = 0.5 if all(w >= 0 for w in attrs.get("class_weights", [])) else 0.0
            label = sql.case(sql.compare(">", score, threshold), labels[1], labels[0])
            if kind == "LOGISTIC":
                positive = sql.sigmoid(score)
                probabilities = [sql.sub(1.0, positive), positive]
            else:
                probabilities = [sql.sub(1.0, score), score]
        else:
            if len(labels) == 2:  # two classes, both weighted: the second class's raw score > 0
                label = sql.case(sql.compare(">", scores[1], 0.0), labels[1], labels[0])
            probabilities = post_transform(scores, kind, self.share)
        probabilities = [self.share(p) for p in probabilities]
        if label is None:
            label = self._label(argmax(probabilities), labels)
        return [
            Value(np.array(label, dtype=object), True),
            Value(np.array(probabilities, dtype=object), True),
        ]

    def visit_SVMClassifier(self, node, values, attrs):
        label, scores = svm_classifier(values[0], attrs, self.share)
        return [Value(np.array(label, dtype=object), True), Value(np.array(scores, dtype=object), True)]

    def visit_SVMRegressor(self, node, values, attrs):
        return [Value(np.array([svm_regressor(values[0], attrs)], dtype=object), True)]

    def visit_TreeEnsemble(self, node, values, attrs):
        """ai.onnx.ml opset 5: the same trees as v3, scores only (no labels)."""
        from indb.udfs.compiler.tree_v5 import v3_attributes

        attrs = v3_attributes(attrs)
        scores = tree_ensemble(values[0], attrs, regressor=True)
        return [Value(np.array(post_transform(scores, attrs["post_transform"]), dtype=object), True)]

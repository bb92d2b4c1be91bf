"""indb's scoring runtime inside PostgreSQL (PL/Python).

This file is self-contained: the server's Python has numpy and onnxruntime but not
indb. Its source becomes the body of ``indb.load_runtime()``, which leaves one
``Runtime`` in PL/Python's per-session dictionary ``GD``; model functions and
triggers call it. Sessions are cached per (model, version, sha256) for the life of
the backend process; a statement trigger looks up its deployment once per
statement, after the insert took the deployment's lock (so every insert is scored by the
version deployed when it commits).
"""

import hashlib
import json

import numpy as np

NUMPY_TYPES = {"float": np.float32, "double": np.float64, "int64": np.int64, "string": object}
PG_TYPES = {"DOUBLE": "float8", "BIGINT": "int8", "VARCHAR": "text", "BOOLEAN": "bool"}
MAX_MODELS = 32


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


class Model:
    """One model version: its signature and onnxruntime session."""

    def __init__(self, name, version, sha256, data, inputs, outputs, classes):
        import onnxruntime as ort

        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ValueError(
                f"IntegrityError: model {name!r} version {version}: stored ONNX bytes have sha256 "
                f"{actual[:16]}..., but {sha256[:16]}... was recorded at registration; the blob was "
                "altered or corrupted"
            )
        options = ort.SessionOptions()
        # Two threads speed up large statement batches; no spinning, so an idle backend
        # does not burn a core between statements.
        options.intra_op_num_threads = 2
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.name, self.version, self.sha256 = name, version, sha256
        self.inputs = json.loads(inputs)
        out = json.loads(outputs)
        self.task = out["task"]
        self.allow_nan = bool(out.get("allow_nan", False))
        self.outputs = [out["prediction_output"]]
        if out["probability_output"]:
            self.outputs.append(out["probability_output"])
        self.classes = json.loads(classes) if classes else None
        self.names = [spec["onnx_name"] for spec in self.inputs]
        self.nullable = any(spec["nullable"] for spec in self.inputs)
        types = {spec["onnx_type"] for spec in self.inputs}
        # One row of numbers of one type: a single array split into [1, 1] views (row mode).
        self.one_type = NUMPY_TYPES[types.pop()] if len(types) == 1 and "string" not in types else None

    def feed_one(self, values):
        """onnxruntime inputs for one row."""
        if self.one_type is not None and not self.nullable:
            array = np.array(values, dtype=self.one_type).reshape(len(values), 1, 1)
            return dict(zip(self.names, array, strict=True))
        return self.feeds([[v] for v in values], 1)

    def feeds(self, columns, rows):
        """onnxruntime inputs from one sequence (or array) of values per input column."""
        result = {}
        for spec, values in zip(self.inputs, columns, strict=True):
            dtype = NUMPY_TYPES[spec["onnx_type"]]
            if dtype is object:
                array = np.array(["" if v is None else v for v in values], dtype=object)
            else:
                array = np.asarray(values, dtype=np.float64 if dtype is not np.int64 else None)
                if array.dtype == object:  # NULLs from a Python list
                    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                array = array.astype(dtype)
            result[spec["onnx_name"]] = array.reshape(rows, 1)
        return result

    def run(self, columns, rows):
        return self.run_feeds(self.feeds(columns, rows), rows)

    def run_feeds(self, feeds, rows):
        results = self.session.run(self.outputs, feeds)
        labels = np.asarray(results[0]).reshape(rows)
        if self.task != "classification":
            return labels.astype(np.float64), None
        raw = results[1]
        if isinstance(raw, list):  # ZipMap output
            probabilities = np.array([[row[c] for c in self.classes] for row in raw], dtype=np.float64)
        else:
            probabilities = np.asarray(raw, dtype=np.float64)
        return labels, probabilities

    def check_nulls(self, nulls):
        for spec, count in zip(self.inputs, nulls, strict=True):
            if count and not spec["nullable"]:
                raise ValueError(
                    f"ScoringError: model {self.name!r} version {self.version}: input column "
                    f"{spec['name']!r} is NULL in {count} row(s); it needs a {spec['sql_type']} value"
                )

    def check_finite(self, columns, nulls=None):
        """NaN and +-inf are refused like NULL unless the model was registered with
        allow_nan=True. ``columns``: per input, an array where NULL was packed as NaN (``nulls``
        counts them) or a list of Python values with None for NULL."""
        if self.allow_nan:
            return
        for i, (spec, values) in enumerate(zip(self.inputs, columns, strict=True)):
            if spec["onnx_type"] not in ("float", "double"):
                continue
            if isinstance(values, np.ndarray):
                bad = int(np.count_nonzero(~np.isfinite(values))) - (nulls[i] if nulls else 0)
            else:
                bad = sum(1 for v in values if v is not None and not np.isfinite(float(v)))
            if bad:
                raise ValueError(
                    f"ScoringError: model {self.name!r} version {self.version}: input column "
                    f"{spec['name']!r} is NaN or infinite in {bad} row(s); it needs a finite "
                    f"{spec['sql_type']} value (register the model with allow_nan=True if it expects NaN)"
                )


class Runtime:
    def __init__(self, plpy):
        self.plpy = plpy
        self.models = {}
        self.plans = {}
        self.hashes = {}
        self.parsed = {}

    # -- catalog --------------------------------------------------------------------------------
    def plan(self, key, query, types):
        found = self.plans.get(key)
        if found is None:
            found = self.plans[key] = self.plpy.prepare(query, types)
        return found

    def model(self, name, version, sha256):
        key = (name, version, sha256)
        found = self.models.get(key)
        if found is not None:
            return found
        rows = self.plpy.execute(
            self.plan(
                "load",
                "SELECT onnx, sha256, inputs::text AS inputs, outputs::text AS outputs, "
                "classes::text AS classes FROM indb.model_versions WHERE model = $1 AND version = $2",
                ["text", "int4"],
            ),
            [name, version],
        )
        if not rows:
            raise ValueError(f"NotFound: model {name!r} has no version {version}")
        row = rows[0]
        model = Model(name, version, sha256, row["onnx"], row["inputs"], row["outputs"], row["classes"])
        for old in [k for k in self.models if k[0] == name]:
            del self.models[old]  # a version switch drops the sessions it replaced
        while len(self.models) >= MAX_MODELS:
            del self.models[next(iter(self.models))]
        self.models[key] = model
        return model

    def deployment(self, table):
        """The deployment row. The insert took the deployment's advisory lock before (trigger
        <table>_lock, sql/postgres/deploy.sql), so it reads the version deployed when it commits."""
        rows = self.plpy.execute(
            self.plan(
                "deployment",
                "SELECT model, version, runtime, mode, probability_columns::text AS columns, "
                "features::text AS features FROM indb.deployments WHERE table_name = $1",
                ["text"],
            ),
            [table],
        )
        if not rows:
            raise ValueError(f"NotFound: table {table!r} has no indb deployment")
        row = dict(rows[0])
        row["sha256"] = self.sha256(row["model"], row["version"])
        text = row.pop("columns") or "[]"
        if text not in self.parsed:
            self.parsed[text] = json.loads(text)
        row["probability_columns"] = self.parsed[text]
        features = row.pop("features") or "null"
        if features not in self.parsed:
            self.parsed[features] = json.loads(features)
        row["features"] = self.parsed[features]
        return row

    def sha256(self, name, version):
        """The sha256 recorded at registration (never changes, so it is cached)."""
        key = (name, version)
        if key not in self.hashes:
            rows = self.plpy.execute(
                self.plan(
                    "sha256",
                    "SELECT sha256 FROM indb.model_versions WHERE model = $1 AND version = $2",
                    ["text", "int4"],
                ),
                [name, version],
            )
            if not rows:
                raise ValueError(f"NotFound: model {name!r} has no version {version}")
            self.hashes[key] = rows[0]["sha256"]
        return self.hashes[key]

    # -- SQL functions ---------------------------------------------------------------------------
    def predict_one(self, name, version, sha256, args, want):
        model = self.model(name, version, sha256)
        model.check_nulls([1 if v is None else 0 for v in args])
        model.check_finite([[v] for v in args])
        labels, probabilities = model.run_feeds(model.feed_one(args), 1)
        if want == "proba":
            return probabilities[0].tolist()
        label = labels[0]
        return label.item() if hasattr(label, "item") else label

    # -- triggers --------------------------------------------------------------------------------
    def _columns_query(self, model, source):
        """One row: count, then per input either packed float8/int8 bytes or an array."""
        parts = ["count(*) AS n"]
        for i, spec in enumerate(model.inputs):
            column = quote_ident(spec["name"])
            parts.append(f"count({column}) AS c{i}")
            if spec["onnx_type"] == "string":
                parts.append(f"array_agg({column}::text) AS v{i}")
            elif spec["onnx_type"] == "int64":
                parts.append(f"string_agg(int8send(coalesce({column}::int8, 0)), ''::bytea) AS v{i}")
            else:
                parts.append(f"string_agg(float8send(coalesce({column}::float8, 'NaN')), ''::bytea) AS v{i}")
        parts.append("string_agg(int8send(id), ''::bytea) AS ids")
        return "SELECT " + ", ".join(parts) + " FROM " + source

    def _read_columns(self, model, source):
        row = self.plpy.execute(self._columns_query(model, source))[0]
        rows = row["n"]
        if rows == 0:
            return 0, None, None
        nulls = [rows - row[f"c{i}"] for i in range(len(model.inputs))]
        model.check_nulls(nulls)
        columns = []
        for i, spec in enumerate(model.inputs):
            value = row[f"v{i}"]
            if spec["onnx_type"] == "string":
                columns.append(value)
            elif spec["onnx_type"] == "int64":
                columns.append(np.frombuffer(value, dtype=">i8"))
            else:
                columns.append(np.frombuffer(value, dtype=">f8"))
        model.check_finite(columns, nulls)
        return rows, np.frombuffer(row["ids"], dtype=">i8"), columns

    def _insert_plan(self, schema, table, model, probability_columns, features=None, source=None):
        """With stored features (features_from), the prediction rows also record the feature
        values, read from ``source``; that plan reads this statement's rows, so it is not kept."""
        key = ("insert", schema, table, model.name, model.version, tuple(probability_columns))
        prediction_type = (
            "text"
            if model.classes and isinstance(model.classes[0], str)
            else ("int8" if model.classes else "float8")
        )
        targets = ["id", "model", "model_version", "runtime", "prediction"] + [
            quote_ident(c) for c in probability_columns
        ]
        arrays = ["$1::int8[]", f"$4::{prediction_type}[]"] + [
            f"${5 + i}::float8[]" for i in range(len(probability_columns))
        ]
        names = ["i", "p"] + [f"p{i}" for i in range(len(probability_columns))]
        recorded = [quote_ident(c) for c in (features or {}).get("columns", [])]
        values = ["u." + n for n in names[1:]] + ["indb_request." + c for c in recorded]
        query = (
            f"INSERT INTO {quote_ident(schema)}.{quote_ident(table + '_predictions')} "
            f"({', '.join(targets + recorded)}) "
            f"SELECT u.i, $2, $3, 'onnx', {', '.join(values)} "
            f"FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})"
        )
        types = ["int8[]", "text", "int4", prediction_type + "[]"] + ["float8[]"] * len(probability_columns)
        if recorded:
            query += f" JOIN {source} ON indb_request.id = u.i"
            return self.plpy.prepare(query, types)
        return self.plan(key, query, types)

    def score_rows(self, schema, table, source):
        """Score every row of ``source`` (a transition table or a query) into the predictions
        table, which sits in ``schema`` beside the request table."""
        deployment = self.deployment(table)
        probability_columns = deployment["probability_columns"]
        model = self.model(deployment["model"], deployment["version"], deployment["sha256"])
        features = deployment["features"]
        if features:  # request rows hold entity keys: join the latest stored features
            source = features["source"].replace("{rows}", source)
        rows, ids, columns = self._read_columns(model, source)
        if not rows:
            return 0
        labels, probabilities = model.run(columns, rows)
        args = [ids.tolist(), model.name, model.version, labels.tolist()]
        if probabilities is not None:
            args += [probabilities[:, i].tolist() for i in range(probabilities.shape[1])]
        plan = self._insert_plan(schema, table, model, probability_columns, features, source)
        self.plpy.execute(plan, args)
        return rows

    def score_statement(self, TD):
        self.score_rows(TD["table_schema"], TD["args"][0], "new_rows")

    def score_row(self, TD):
        deployment = self.deployment(TD["args"][0])
        probability_columns = deployment["probability_columns"]
        model = self.model(deployment["model"], deployment["version"], deployment["sha256"])
        new = TD["new"]
        values = [new[spec["name"]] for spec in model.inputs]
        model.check_nulls([1 if v is None else 0 for v in values])
        model.check_finite([[v] for v in values])
        labels, probabilities = model.run_feeds(model.feed_one(values), 1)
        label = labels[0]
        new["prediction"] = label.item() if hasattr(label, "item") else label
        new["model"], new["model_version"], new["runtime"] = model.name, model.version, "onnx"
        if probabilities is not None:
            for column, value in zip(probability_columns, probabilities[0].tolist(), strict=True):
                new[column] = value
        return "MODIFY"

"""indb's scoring runtime inside PostgreSQL (PL/Python).

This file is self-contained: the server's Python has numpy and onnxruntime but not
indb. Its source becomes the body of ``indb.load_runtime()``, which leaves one
``Runtime`` in PL/Python's per-session dictionary ``GD``; model functions and
triggers call it. Sessions are cached per (model, version, content hash) for the life
of the backend process; a statement trigger looks up its deployment once per
statement, after the insert took the request table's lock (a switch waits for it and
later inserts for the switch: sql/postgres/deploy.sql), so every insert is scored by the
version deployed when it commits.

Trust: the trigger functions run as indb's owner, so they check that the table that
fired them is the deployed one (schema and name as recorded in ``indb.deployments``)
and write only beside it; a loaded version must have the content hash the deployment
(or, for ``predict_*``, the function body) recorded, not merely the one in its own row.
onnxruntime runs under a watchdog that stops it when PostgreSQL wants the statement to
end (statement_timeout, pg_cancel_backend) or after ``indb.max_inference_ms``.
"""

import hashlib
import json
import math
import os
import threading
import time

import numpy as np

MODEL_NAME = r"[a-z_][a-z0-9_]{0,39}"  # indb.identifiers.model_name
SQL_ARGUMENT_TYPES = {
    "DOUBLE": "double precision",
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "BOOLEAN": "boolean",
}
NUMPY_TYPES = {"float": np.float32, "double": np.float64, "int64": np.int64, "string": object}
PG_TYPES = {"DOUBLE": "float8", "BIGINT": "int8", "VARCHAR": "text", "BOOLEAN": "bool"}
MAX_MODELS = 32
# indb.predict_batch_<model>: pages per chunk of a table (8 MB at 8 kB pages), column types taken
BATCH_BLOCKS = 1024
MAX_BLOCK = 4294967295  # past the last page a relation can have: the open end of the last range
BATCH_KEY_TYPES = ("smallint", "integer", "bigint")
BATCH_NUMBER_TYPES = BATCH_KEY_TYPES + ("real", "double precision", "numeric")
BATCH_TEXT_TYPES = ("text", "character varying", "character")
# A bulk statement's predictions are written by a binary COPY from a file the backend writes
# (see Runtime._copy_predictions) from this many rows up; fewer go by the prepared unnest insert.
COPY_MIN_ROWS = 1000
COPY_CHUNK = 65536  # rows formatted at once: a few MB in Python, whatever the statement's size
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
COPY_DIRECTORY = os.path.join("base", "pgsql_tmp")  # in the data directory; emptied at restart
COPY_PREFIX = "pgsql_tmp_indb."  # PostgreSQL removes pgsql_tmp* files there when it starts
MAX_VERSIONS = 4  # sessions of one model kept at once (a champion and its challengers)
# indb.lifecycle.challengers.bucket: which arm serves a request id (the same in SQL and here)
BUCKET_PRIME = 2147483647
BUCKET_MULTIPLIER = 48271
BUCKETS = 10000


def buckets(ids):
    """indb.lifecycle.challengers.bucket over an int64 array: every product stays below 2^63,
    and the first remainder keeps the dividend's sign, as SQL's ``%`` does."""
    x = (np.fmod(ids.astype(np.int64), BUCKET_PRIME) + BUCKET_PRIME) % BUCKET_PRIME
    a = (x * BUCKET_MULTIPLIER) % BUCKET_PRIME
    return ((a * a + x) % BUCKET_PRIME) % BUCKETS


def in_ranges(values, ranges):
    chosen = np.zeros(len(values), dtype=bool)
    for low, high in ranges:
        chosen |= (values >= low) & (values < high)
    return chosen


def array_text(values):
    """A list as one SQL array literal, for a cast to an array type in SQL. PL/Python turns a
    list into an array element by element, each through its own text copy, and a set-returning
    function keeps those copies until it ends (about 130 MB for 1M rows of three values); one
    string per chunk is freed with the chunk. Floats are written by repr, which round-trips."""
    if values and isinstance(values[0], str):
        return "{" + ",".join(map(quote_array_element, values)) + "}"
    if values and isinstance(values[0], bool):
        return "{" + ",".join("true" if v else "false" for v in values) + "}"
    return "{" + ",".join(map(repr, values)) + "}"


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_array_element(value):
    """A string as one element of an array literal (a value cast in SQL, never SQL text)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _packs_as_int8(spec):
    """Integers, and booleans (PostgreSQL casts a boolean to int4 only, never to float8)."""
    return spec["onnx_type"] == "int64" or spec["sql_type"] == "BOOLEAN"


def packed_inputs(specs, columns):
    """Select-list items reading every model input in one aggregate pass: per input i its
    non-NULL count c<i>; the numeric inputs of a row packed together, one after the other as
    big-endian float8/int8 bytes (NULL as NaN or 0, told apart by the count), in one
    ``string_agg`` (v: one aggregate of one concatenation per row read 100k rows of eight
    inputs in 0.062 s where one aggregate per input took 0.081 s); strings as arrays v<i>."""
    parts, numbers = [], []
    for i, (spec, column) in enumerate(zip(specs, columns, strict=True)):
        parts.append(f"count({column}) AS c{i}")
        if spec["onnx_type"] == "string":
            parts.append(f"array_agg({column}::text) AS v{i}")
        elif _packs_as_int8(spec):
            number = f"{column}::int4" if spec["sql_type"] == "BOOLEAN" else column  # no bool -> int8 cast
            numbers.append(f"int8send(coalesce({number}::int8, 0))")
        else:
            numbers.append(f"float8send(coalesce({column}::float8, 'NaN'))")
    if numbers:
        parts.append(f"string_agg({' || '.join(numbers)}, ''::bytea) AS v")
    return parts


def unpacked_inputs(model, row, rows):
    """The model's input columns from a row read with :func:`packed_inputs`, NULLs and
    non-finite values refused as the model says."""
    nulls = [rows - row[f"c{i}"] for i in range(len(model.inputs))]
    model.check_nulls(nulls)
    layout = [
        (f"n{i}", ">i8" if _packs_as_int8(spec) else ">f8")
        for i, spec in enumerate(model.inputs)
        if spec["onnx_type"] != "string"
    ]
    packed = np.frombuffer(row["v"], dtype=np.dtype(layout)) if layout else None
    columns = []
    for i, spec in enumerate(model.inputs):
        columns.append(row[f"v{i}"] if spec["onnx_type"] == "string" else packed[f"n{i}"])
    model.check_finite(columns, nulls)
    return columns


def copy_rows(fields, start, end):
    """Rows start..end of :meth:`Runtime._copy_fields` in COPY's binary format: per row the
    field count, then per field its length and big-endian bytes. Values of a text field
    given per row (only ever the last field) are NUL-padded to one width in numpy; their
    padding is dropped with a mask, which keeps the rows in order."""
    layout, lengths = [("count", ">i2")], []
    for i, (_, _, kind, value) in enumerate(fields):
        if kind == "S":
            width = value.dtype.itemsize if isinstance(value, np.ndarray) else len(value)
            layout += [(f"l{i}", ">i4"), (f"v{i}", f"S{width}")]
        else:
            layout += [(f"l{i}", ">i4"), (f"v{i}", kind)]
    block = np.empty(end - start, dtype=np.dtype(layout))
    block["count"] = len(fields)
    for i, (_, _, kind, value) in enumerate(fields):
        each = isinstance(value, np.ndarray)
        block[f"v{i}"] = value[start:end] if each else value
        if kind == "S" and each:
            lengths = np.char.str_len(block[f"v{i}"])  # PostgreSQL text has no NUL
            block[f"l{i}"] = lengths
        else:
            block[f"l{i}"] = block.dtype.fields[f"v{i}"][0].itemsize
    if not len(lengths):
        return block.tobytes()
    raw = block.view(np.uint8).reshape(len(block), block.dtype.itemsize)
    width = block.dtype.fields[f"v{len(fields) - 1}"][0].itemsize
    keep = np.ones(raw.shape, dtype=bool)
    keep[:, raw.shape[1] - width :] = np.arange(width) < lengths[:, None]
    return raw[keep].tobytes()


def content_hash(sha256, inputs, outputs, classes, recipe):
    """One hash over what decides a version's predictions: the ONNX bytes (by their sha256),
    the signature (inputs, outputs), the classes and the recipe, as stored. The registry
    records it at registration (indb.registry imports it from here) and deployments record
    it; a loaded row must match the recorded hash, so replacing bytes and sha256 together
    is caught."""
    digest = hashlib.sha256(b"indb content v1")
    for part in (sha256, inputs, outputs, classes or "", recipe):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class Watchdog:
    """Ends an onnxruntime run early (``RunOptions.terminate``) when the backend has an
    interrupt pending (a statement_timeout or a cancel sets PostgreSQL's QueryCancelPending,
    a terminate its ProcDiePending; other interrupts, such as NOTIFY, do not count;
    which onnxruntime never looks at) or the run passed its own limit. One thread per
    backend, polling every 50 ms while runs happen and sleeping after a second without one,
    so an idle connection costs nothing. (Not faster: PL/Python's main thread keeps the GIL
    outside Python, so each time this thread wakes between runs it takes a GIL hand-off from
    the next call, tens of microseconds on a busy machine; every 4 ms cost 10% on one-row
    inserts.) A timeout or cancel therefore ends a run within about 50 ms."""

    POLL = 0.05
    QUIET_POLLS = 20

    def __init__(self):
        self.pending = self.get_option = None
        try:
            import ctypes

            backend = ctypes.CDLL(None)
            self.pending = [ctypes.c_int.in_dll(backend, n) for n in ("QueryCancelPending", "ProcDiePending")]
            # const char *GetConfigOption(const char *name, bool missing_ok, bool
            # restrict_privileged): with missing_ok it never raises, so it is safe to call here.
            get_option = backend.GetConfigOption
            get_option.restype = ctypes.c_char_p
            get_option.argtypes = [ctypes.c_char_p, ctypes.c_bool, ctypes.c_bool]
            self.get_option = get_option
        except (OSError, ValueError, AttributeError):
            pass  # not inside a PostgreSQL backend: the limit is read with SPI
        self.current = None
        self.idle = True
        self.wake = threading.Event()
        self.thread = None

    def interrupted(self):
        return self.pending is not None and any(flag.value for flag in self.pending)

    def watch(self, options, deadline):
        self.current = (options, deadline)
        if self.idle:
            self.idle = False
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="indb-watchdog", daemon=True)
                self.thread.start()
            self.wake.set()

    def done(self):
        self.current = None

    def _loop(self):
        while True:
            self.wake.wait()
            self.wake.clear()
            quiet = 0
            while True:
                current = self.current
                if current is None:
                    quiet += 1
                    if quiet >= self.QUIET_POLLS:
                        self.idle = True
                        if self.current is None:
                            break
                        self.idle = False
                        quiet = 0
                else:
                    quiet = 0
                    options, deadline = current
                    if self.interrupted() or (deadline is not None and time.monotonic() > deadline):
                        options.terminate = True
                time.sleep(self.POLL)


class Model:
    """One model version: its signature and onnxruntime session."""

    def __init__(self, name, version, expected, row, runtime):
        data = row["onnx"]
        inputs, outputs, classes = row["inputs"], row["outputs"], row["classes"]
        actual = hashlib.sha256(data).hexdigest()
        if actual != row["sha256"]:
            raise ValueError(
                f"IntegrityError: model {name!r} version {version}: stored ONNX bytes have sha256 "
                f"{actual[:16]}..., but {row['sha256'][:16]}... was recorded at registration; the "
                "blob was altered or corrupted"
            )
        if expected is not None:
            found = content_hash(actual, inputs, outputs, classes, row["recipe"])
            if found != expected:
                raise ValueError(
                    f"IntegrityError: model {name!r} version {version} is not the version that was "
                    f"deployed: its content hash is {found[:16]}..., the deployment recorded "
                    f"{expected[:16]}...; the catalog row was changed after deployment (redeploy "
                    "a registered version)"
                )
        self.runtime = runtime
        # Two threads speed up large statement batches; one-row runs get their own session
        # (session_for)
        self.session = self._session(data, 2)
        self.data, self.single = data, None
        self.name, self.version, self.sha256 = name, version, actual
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
        self.numbers = [spec["onnx_type"] in ("float", "double") for spec in self.inputs]
        self.columns = [spec["name"] for spec in self.inputs]
        # feed_one fills this array in place and hands back the same feeds every time: building
        # the array and its views per row was 5.4 us of a one-row insert, filling it 0.8 us
        # (a run only reads its inputs while it runs, and one backend runs one at a time)
        self.one_array = self.one_feeds = None
        if self.one_type is not None and not self.nullable:
            self.one_array = np.empty((len(self.inputs), 1, 1), dtype=self.one_type)
            self.one_feeds = dict(zip(self.names, self.one_array, strict=True))

    @staticmethod
    def _session(data, threads):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # no spinning, so an idle backend does not burn a core between statements
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def session_for(self, rows):
        """The session for a run of ``rows`` rows. One row runs on a session of one intra-op
        thread, built at the first one-row run (or by indb.warm_up) from the bytes the first
        session was built from, already checked: a tree ensemble splits its trees over the
        pool's threads even for one row, and waking a sleeping thread costs more than the work
        (GB-100, one row, in the server: 38-49 us on two threads against 23 us on one in a
        loop; 53 against 33 us a run inside row-mode inserts)."""
        if rows != 1:
            return self.session
        if self.single is None:
            self.single, self.data = self._session(self.data, 1), None
        return self.single

    def feed_one(self, values):
        """onnxruntime inputs for one row."""
        if self.one_array is not None:
            self.one_array[:, 0, 0] = values  # numpy's conversion, as np.array(values, dtype)
            return self.one_feeds
        return self.feeds([[v] for v in values], 1)

    def run_one(self, values):
        """One row's label and probabilities as Python values (probabilities a list, or None). A
        float32 probability becomes the same Python float by ``tolist`` as through float64."""
        self.check_one(values)
        feeds = self.feed_one(values)
        results = self.runtime.run(self, feeds, 1)
        label = np.asarray(results[0]).reshape(1)[0]
        if self.task != "classification":
            return float(label), None
        label = label.item() if hasattr(label, "item") else label
        raw = results[1]
        if isinstance(raw, list):  # ZipMap output
            return label, [float(raw[0][c]) for c in self.classes]
        return label, np.asarray(raw)[0].tolist()

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
                array = array.astype(dtype, copy=False)  # often float64 already
            result[spec["onnx_name"]] = array.reshape(rows, 1)
        return result

    def run(self, columns, rows):
        return self.run_feeds(self.feeds(columns, rows), rows)

    def run_feeds(self, feeds, rows):
        results = self.runtime.run(self, feeds, rows)
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
                # math.isfinite: numpy's on a Python float costs ~2 us a value, most of a
                # one-row insert's checks
                bad = sum(1 for v in values if v is not None and not math.isfinite(v))
            if bad:
                raise ValueError(
                    f"ScoringError: model {self.name!r} version {self.version}: input column "
                    f"{spec['name']!r} is NaN or infinite in {bad} row(s); it needs a finite "
                    f"{spec['sql_type']} value (register the model with allow_nan=True if it expects NaN)"
                )

    def check_one(self, values):
        """check_nulls and check_finite for one row of Python values, in one pass (they take
        columns, ~10 us for a one-row insert of eight inputs); a bad value raises their error."""
        for spec, number, v in zip(self.inputs, self.numbers, values, strict=True):
            if v is None:
                if not spec["nullable"]:
                    break
            elif number and not self.allow_nan and not math.isfinite(v):
                break
        else:
            return
        self.check_nulls([1 if v is None else 0 for v in values])
        self.check_finite([[v] for v in values])


class Runtime:
    def __init__(self, plpy):
        self.plpy = plpy
        self.models = {}
        self.plans = {}
        self.parsed = {}
        self.deployments = {}  # table -> (row version "xmin ctid", deployment row)
        self.watchdog = Watchdog()
        self.limit_ms = None  # indb.max_inference_ms, read once per statement or call
        self.copies = 0  # files written for COPY by this backend (their names' serial)

    # -- limits ----------------------------------------------------------------------------------
    def read_limit(self):
        option = self.watchdog.get_option
        if option is not None:  # a hash look-up in the backend, about 1 us (SPI: 5-7 us)
            found = option(b"indb.max_inference_ms", True, False)
            if not found:  # unset, or set to '' (no limit)
                self.limit_ms = None
                return
            text = found.decode("utf-8", "replace")
        else:
            rows = self.plpy.execute(
                self.plan("limit", "SELECT current_setting('indb.max_inference_ms', true) AS v", [])
            )
            text = rows[0]["v"]
        try:
            value = float(text) if text else 0.0
        except ValueError:
            raise ValueError(
                f"ScoringError: indb.max_inference_ms is {text!r}; set it to a number of milliseconds"
            ) from None
        self.limit_ms = value if value > 0 else None

    def run(self, model, feeds, rows):
        """onnxruntime's run under the watchdog; a run it stopped raises PostgreSQL's own error
        (statement timeout, cancel) or a ScoringError naming the limit."""
        import onnxruntime as ort

        options = ort.RunOptions()
        deadline = None if self.limit_ms is None else time.monotonic() + self.limit_ms / 1000.0
        self.watchdog.watch(options, deadline)
        try:
            return model.session_for(rows).run(model.outputs, feeds, options)
        except Exception:
            if not options.terminate:
                raise
        finally:
            self.watchdog.done()
        if self.watchdog.interrupted():
            self.plpy.execute("SELECT 1")  # lets PostgreSQL raise its timeout or cancel error
        if self.limit_ms is not None and deadline is not None and time.monotonic() > deadline:
            raise ValueError(
                f"ScoringError: model {model.name!r} version {model.version} ran longer than "
                f"indb.max_inference_ms = {self.limit_ms:g} ms; the statement was stopped"
            )
        raise ValueError(f"ScoringError: model {model.name!r} version {model.version}: the run was stopped")

    # -- catalog --------------------------------------------------------------------------------
    def plan(self, key, query, types):
        found = self.plans.get(key)
        if found is None:
            found = self.plans[key] = self.plpy.prepare(query, types)
        return found

    def model(self, name, version, expected):
        """The session of a version whose content hash is ``expected`` (None: a deployment
        from before content hashes, checked against its own sha256 only)."""
        key = (name, version, expected)
        found = self.models.get(key)
        if found is not None:
            return found
        rows = self.plpy.execute(
            self.plan(
                "load",
                "SELECT onnx, sha256, inputs::text AS inputs, outputs::text AS outputs, "
                "classes::text AS classes, recipe::text AS recipe "
                "FROM indb.model_versions WHERE model = $1 AND version = $2",
                ["text", "int4"],
            ),
            [name, version],
        )
        if not rows:
            raise ValueError(f"NotFound: model {name!r} has no version {version}")
        model = Model(name, version, expected, rows[0], self)
        # A switch drops the sessions it replaced, but a champion and its challengers (other
        # versions of the same model, indb.lifecycle.challengers) stay loaded together: at most
        # MAX_VERSIONS of one model, the oldest loaded dropped first.
        same = [k for k in self.models if k[0] == name]
        for old in same[: max(0, len(same) - MAX_VERSIONS + 1)]:
            del self.models[old]
        while len(self.models) >= MAX_MODELS:
            del self.models[next(iter(self.models))]
        self.models[key] = model
        return model

    def deployment(self, table, fired=None):
        """The deployment row. The insert holds the request table's lock, which a switch's
        lock conflicts with (sql/postgres/deploy.sql), so it reads the version deployed when it
        commits.
        ``fired``: (schema, table) of the table whose trigger called, which must be the
        deployed table itself: anyone who owns a table can attach a trigger function.

        Kept per table with the row version it was read from, (xmin, ctid): a deploy, a switch
        and a change of challengers update the row (indb.deployments.deploy), which gives it a
        new (xmin, ctid), so a read of those two columns after the lock says whether the kept
        row is still the one deployed (one index look-up instead of the full read with
        its challengers, 19-20 us per row-mode insert in issue 3's profile)."""
        found = self.plpy.execute(
            self.plan(
                "deployment_version",
                "SELECT xmin::text || ' ' || ctid::text AS v FROM indb.deployments WHERE table_name = $1",
                ["text"],
            ),
            [table],
        )
        kept = self.deployments.get(table)
        if found and kept is not None and kept[0] == found[0]["v"]:
            row = kept[1]
        else:
            row = self._read_deployment(table)
            self.deployments[table] = (row.pop("row_version"), row)
        if fired is not None and (row["schema_name"], row["table_name"]) != tuple(fired):
            raise ValueError(
                f"IntegrityError: indb's scoring trigger fired on {fired[0]}.{fired[1]}, which is not "
                f"the deployed table {row['schema_name']}.{row['table_name']}; nothing was written"
            )
        return row

    def _read_deployment(self, table):
        rows = self.plpy.execute(
            self.plan(
                "deployment",
                "SELECT xmin::text || ' ' || ctid::text AS row_version, "
                "table_name, schema_name, model, version, runtime, mode, content_hash, "
                "explain_method, "
                "probability_columns::text AS columns, features::text AS features, "
                "(SELECT pg_catalog.json_agg(pg_catalog.json_build_object('model', c.model, "
                "'version', c.version, 'mode', c.mode, 'runtime', c.runtime, 'content_hash', "
                "c.content_hash, 'bucket_low', c.bucket_low, 'bucket_high', c.bucket_high) "
                "ORDER BY c.version)::text FROM indb.challengers AS c "
                "WHERE c.deployment = d.table_name) AS challengers "
                "FROM indb.deployments AS d WHERE table_name = $1",
                ["text"],
            ),
            [table],
        )
        if not rows:
            raise ValueError(f"NotFound: table {table!r} has no indb deployment")
        row = dict(rows[0])
        if row["schema_name"] is None:
            raise ValueError(
                f"IntegrityError: the deployment on table {table!r} records no schema (it was made "
                "before indb checked which table fires its triggers); deploy it again"
            )
        text = row.pop("columns") or "[]"
        if text not in self.parsed:
            self.parsed[text] = json.loads(text)
        row["probability_columns"] = self.parsed[text]
        features = row.pop("features") or "null"
        if features not in self.parsed:
            self.parsed[features] = json.loads(features)
        row["features"] = self.parsed[features]
        # the challengers (indb.lifecycle.challengers), read with the deployment: one query
        challengers = row.pop("challengers") or "[]"
        if challengers not in self.parsed:
            self.parsed[challengers] = json.loads(challengers)
        row["challengers"] = self.parsed[challengers]
        return row

    # -- SQL functions ---------------------------------------------------------------------------
    def predict_one(self, name, version, expected, args, want):
        self.read_limit()
        model = self.model(name, version, expected)
        label, probabilities = model.run_one(args)
        return probabilities if want == "proba" else label

    # -- model functions for roles that may not create PL/Python functions ------------------------
    def _catalog_version(self, name, version):
        """The catalog row of a model version, checked (a model name, its bytes matching their
        sha256), and the content hash the functions built from it embed."""
        import re

        if not isinstance(name, str) or not re.fullmatch(MODEL_NAME, name) or version is None:
            raise ValueError(f"NotFound: {name!r} is not a model name")
        rows = self.plpy.execute(
            self.plan(
                "install",
                "SELECT onnx, sha256, inputs::text AS inputs, outputs::text AS outputs, "
                "classes::text AS classes, recipe::text AS recipe FROM indb.model_versions "
                "WHERE model = $1 AND version = $2",
                ["text", "int4"],
            ),
            [name, version],
        )
        if not rows:
            raise ValueError(f"NotFound: model {name!r} has no version {version}")
        row = rows[0]
        actual = hashlib.sha256(row["onnx"]).hexdigest()
        if actual != row["sha256"]:
            raise ValueError(
                f"IntegrityError: model {name!r} version {version}: ONNX bytes do not match sha256"
            )
        return row, content_hash(actual, row["inputs"], row["outputs"], row["classes"], row["recipe"])

    def install_model_functions(self, name, version):
        """indb.install_model_functions(model, version), for the developer role (indb.roles): the
        same predict_<model>_v<N> (and, for the default version, predict_<model>) functions the
        Python client creates for a superuser (PostgresBackend.model_sql), built only from the
        catalog row: the name must be a model name, every type one of four, argument names
        quoted, and the content hash embedded is the one of the row as it is now."""
        row, content = self._catalog_version(name, version)
        inputs, outputs = json.loads(row["inputs"]), json.loads(row["outputs"])
        parameters, types = [], []
        for spec in inputs:
            numeric = spec["onnx_type"] in ("float", "double") and spec["sql_type"] != "BOOLEAN"
            kind = SQL_ARGUMENT_TYPES["DOUBLE" if numeric else spec["sql_type"]]
            parameters.append(f"{self.plpy.quote_ident(str(spec['name']))} {kind}")
            types.append(kind)
        returns = {"predict": SQL_ARGUMENT_TYPES[outputs["prediction_type"]]}
        if outputs["task"] == "classification":
            returns["predict_proba"] = "double precision[]"
        ((default,),) = [
            (r["v"],)
            for r in self.plpy.execute(
                self.plan(
                    "default_version",
                    "SELECT coalesce((SELECT version FROM indb.model_aliases WHERE model = $1 "
                    "AND alias = 'production'), (SELECT max(version) FROM indb.model_versions "
                    "WHERE model = $1)) AS v",
                    ["text"],
                ),
                [name],
            )
        ]
        call = ", ".join(f"${n + 1}" for n in range(len(inputs)))
        for kind, return_type in returns.items():
            want = "proba" if kind == "predict_proba" else "label"
            body = (
                'if "indb_runtime" not in GD:\n    plpy.execute("SELECT indb.load_runtime()")\n'
                f'return GD["indb_runtime"].predict_one({name!r}, {int(version)}, {content!r}, '
                f"list(args), {want!r})\n"
            )
            functions = [(f"{kind}_{name}_v{int(version)}", "plpython3u", body)]
            if default == version:
                functions.append(
                    (f"{kind}_{name}", "sql", f"SELECT indb.{kind}_{name}_v{int(version)}({call})")
                )
            for function, language, text in functions:
                for (old,) in [
                    (r["f"],)
                    for r in self.plpy.execute(
                        self.plan(
                            "overloads",
                            "SELECT oid::regprocedure::text AS f FROM pg_proc "
                            "WHERE proname = $1 AND pronamespace = 'indb'::regnamespace",
                            ["text"],
                        ),
                        [function],
                    )
                ]:
                    self.plpy.execute(f"DROP FUNCTION IF EXISTS {old}")
                definer = ""
                if language == "plpython3u":
                    definer = " SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
                    definer += " SET standard_conforming_strings = on"
                self.plpy.execute(
                    f"CREATE FUNCTION indb.{self.plpy.quote_ident(function)}({', '.join(parameters)}) "
                    f"RETURNS {return_type} LANGUAGE {language} STABLE PARALLEL UNSAFE{definer} "
                    f"AS {self.plpy.quote_literal(text)}"
                )
                self.plpy.execute(
                    f"COMMENT ON FUNCTION indb.{self.plpy.quote_ident(function)}({', '.join(types)}) IS "
                    + self.plpy.quote_literal(f"indb model {name} version {int(version)}")
                )
        self.install_batch_functions(name, version, default == version)

    # -- batch scoring from SQL (indb.predict_batch_<model>) ----------------------------------------
    def install_batch_functions(self, name, version, is_default):
        """indb.predict_batch_<model>_v<N>(relation regclass, key text DEFAULT 'id') and, for the
        default version, indb.predict_batch_<model>(...): SQL functions over
        indb.predict_batch_chunks, built from the catalog row alone (the name must be a model
        name; the content hash embedded is the row's as it is now; the type and class count
        come from its signature)."""
        row, content = self._catalog_version(name, version)
        outputs = json.loads(row["outputs"])
        prediction = SQL_ARGUMENT_TYPES[outputs["prediction_type"]]
        q, literal = self.plpy.quote_ident, self.plpy.quote_literal
        columns = ["key bigint", f"prediction {prediction}"]
        # the body is parsed with the caller's search_path: types by keyword or with their schema
        values = ["u.k", "u.p::" + ("pg_catalog.text" if prediction == "text" else prediction)]
        if outputs["task"] == "classification":
            k = len(json.loads(row["classes"]))
            columns.append("probabilities double precision[]")
            values.append(f"a.p[(u.n - 1) * {k} + 1 : u.n * {k}]")
        reads = ", ".join(f"{spec['name']} {spec['sql_type']}" for spec in json.loads(row["inputs"]))
        pinned = f"predict_batch_{name}_v{int(version)}"
        body = (
            f"SELECT {', '.join(values)} FROM indb.predict_batch_chunks({literal(name)}, {int(version)}, "
            f"{literal(content)}, relation::pg_catalog.oid, key) AS c, "
            # OFFSET 0: parsed once per chunk, not pulled up into every row's slice
            "LATERAL (SELECT c.probabilities::double precision[] AS p OFFSET 0) AS a, "
            "ROWS FROM (pg_catalog.unnest(c.keys::bigint[]), pg_catalog.unnest(c.labels::pg_catalog.text[])) "
            "WITH ORDINALITY AS u(k, p, n)"
        )
        functions = [(pinned, body)]
        if is_default:
            functions.append((f"predict_batch_{name}", f"SELECT * FROM indb.{q(pinned)}(relation, key)"))
        for function, text in functions:
            # another version's default may have another prediction type: replaced, not altered
            self.plpy.execute(
                f"DROP FUNCTION IF EXISTS indb.{q(function)}(pg_catalog.regclass, pg_catalog.text)"
            )
            # Not SECURITY DEFINER: the relation is read with the caller's rights (its privileges,
            # row security); the model is loaded by indb.predict_batch_load, which is. No SET
            # either, so PostgreSQL inlines it into the caller's query (no second tuplestore of
            # every row): its body names functions and types with their schema.
            self.plpy.execute(
                f"CREATE OR REPLACE FUNCTION indb.{q(function)}(relation pg_catalog.regclass, "
                f"key pg_catalog.text DEFAULT 'id') RETURNS TABLE ({', '.join(columns)}) "
                f"LANGUAGE sql STABLE PARALLEL UNSAFE AS {literal(text)}"
            )
            self.plpy.execute(
                f"COMMENT ON FUNCTION indb.{q(function)}(pg_catalog.regclass, pg_catalog.text) IS "
                + literal(
                    f"indb model {name} version {int(version)}: scores every row of a table or view "
                    "the caller may read, by chunks of rows in one onnxruntime run each; the key "
                    f"column (an integer) identifies each row. Reads the columns {reads}"
                )
            )

    def has_model(self, name, version, expected):
        return (name, version, expected) in self.models

    def load_for_batch(self, name, version, expected):
        """indb.predict_batch_load (SECURITY DEFINER): the session of a version, loaded into this
        backend with the checks of ``model`` (sha256, content hash); nothing is returned."""
        import re

        if not isinstance(name, str) or not re.fullmatch(MODEL_NAME, name) or version is None:
            raise ValueError(f"NotFound: {name!r} is not a model name")
        self.model(name, version, expected)

    def _relation(self, relation, key, model):
        """(qualified name, relkind, SQL for each input and the key) of a relation given by oid:
        every column the model needs must be there with a type it can take."""
        rows = self.plpy.execute(
            self.plan(
                "batch_relation",
                "SELECT n.nspname::text AS s, c.relname::text AS r, c.relkind::text AS kind "
                "FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE c.oid = $1",
                ["oid"],
            ),
            [relation],
        )
        if relation is None or not rows:
            raise ValueError(f"NotFound: no relation with oid {relation}")
        q = self.plpy.quote_ident
        schema, table, kind = rows[0]["s"], rows[0]["r"], rows[0]["kind"]
        if kind not in ("r", "m", "v", "p", "f"):
            raise ValueError(f"ScoringError: {schema}.{table} is not a table or view")
        found = {
            r["a"]: r["t"]
            for r in self.plpy.execute(
                self.plan(
                    "batch_columns",
                    "SELECT attname::text AS a, pg_catalog.format_type(atttypid, NULL) AS t "
                    "FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                    ["oid"],
                ),
                [relation],
            )
        }
        where = f"{schema}.{table}"

        def column(name, accepted, wanted):
            if name not in found:
                near = [c for c in found if c.lower() == str(name).lower()]
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ValueError(
                    f"ScoringError: {where} has no column {name!r} (model {model.name!r} version "
                    f"{model.version} needs {name!r} {wanted}){hint}"
                )
            if found[name] not in accepted:
                raise ValueError(
                    f"ScoringError: column {name!r} of {where} is {found[name]}; model {model.name!r} "
                    f"version {model.version} needs {wanted}"
                )
            return q(name)

        if not isinstance(key, str):
            raise ValueError("ScoringError: key must name an integer column of the relation")
        key_sql = column(key, BATCH_KEY_TYPES, "an integer key (smallint, integer or bigint)")
        inputs = []
        for spec in model.inputs:
            kind_of = spec["onnx_type"]
            if kind_of == "string":
                accepted, wanted = BATCH_TEXT_TYPES, "text"
            elif spec["sql_type"] == "BOOLEAN":
                accepted, wanted = ("boolean",), "boolean"
            elif kind_of == "int64":
                accepted, wanted = BATCH_KEY_TYPES, "an integer"
            else:
                accepted, wanted = BATCH_NUMBER_TYPES, "a number"
            inputs.append(column(spec["name"], accepted, wanted))
        return f"{q(schema)}.{q(table)}", kind, inputs, key_sql

    def _batch_query(self, model, relation, inputs, key_sql, ranged):
        """One row per chunk: count, then per input its packed float8/int8 bytes (NULL as NaN or
        0, counted) or an array, and the keys packed, all from one scan in one order."""
        parts = ["count(*) AS n", f"count({key_sql}) AS ck", *packed_inputs(model.inputs, inputs)]
        parts.append(f"string_agg(int8send({key_sql}::int8), ''::bytea) AS ids")
        query = "SELECT " + ", ".join(parts) + " FROM " + relation
        if ranged:
            return query + " WHERE ctid >= $1 AND ctid < $2", ["tid", "tid"]
        return query, []

    def predict_batch(self, name, version, expected, relation, key):
        """indb.predict_batch_chunks: rows of (keys, labels as text, probabilities flattened row by
        row) per chunk of the relation, read with the caller's rights. Tables and materialized
        views are read by ranges of BATCH_BLOCKS pages (a TID range scan each, all in the
        statement's snapshot), so one chunk at a time is in Python; other relations (views,
        partitioned and foreign tables) in one read."""
        model = self.models.get((name, version, expected))
        if model is None:
            raise ValueError(f"NotFound: model {name!r} version {version} is not loaded")
        qualified, kind, inputs, key_sql = self._relation(relation, key, model)
        ranged = kind in ("r", "m")
        text, types = self._batch_query(model, qualified, inputs, key_sql, ranged)
        plan = self.plan(("batch", text), text, types)
        if ranged:
            ((pages,),) = [
                (r["p"],)
                for r in self.plpy.execute(
                    self.plan(
                        "batch_pages",
                        "SELECT (pg_catalog.pg_relation_size($1) / "
                        "pg_catalog.current_setting('block_size')::int8)::int8 AS p",
                        ["oid"],
                    ),
                    [relation],
                )
            ]
            # the last range is open: the relation only grows while this statement runs
            bounds = list(range(0, max(int(pages), 1), BATCH_BLOCKS)) + [MAX_BLOCK]
            ranges = [(f"({lo},0)", f"({hi},0)") for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        else:
            ranges = [None]
        self.read_limit()
        for bounds in ranges:
            row = self.plpy.execute(plan, list(bounds) if bounds else [])[0]
            rows = row["n"]
            if rows == 0:
                continue
            if row["ck"] != rows:
                raise ValueError(
                    f"ScoringError: key column {key!r} is NULL in {rows - row['ck']} row(s); every "
                    "row needs a key"
                )
            columns = unpacked_inputs(model, row, rows)
            labels, probabilities = model.run(columns, rows)
            yield (
                array_text(np.frombuffer(row["ids"], dtype=">i8").tolist()),
                array_text(labels.tolist()),
                None if probabilities is None else array_text(probabilities.reshape(-1).tolist()),
            )

    # -- triggers --------------------------------------------------------------------------------
    def _columns_query(self, model, source):
        """One row: count, then per input either packed float8/int8 bytes or an array."""
        columns = [quote_ident(spec["name"]) for spec in model.inputs]
        parts = ["count(*) AS n", *packed_inputs(model.inputs, columns)]
        parts.append("string_agg(int8send(id), ''::bytea) AS ids")
        parts.append("count(id) AS ids_known")
        return "SELECT " + ", ".join(parts) + " FROM " + source

    def _read_columns(self, model, source):
        row = self.plpy.execute(self._columns_query(model, source))[0]
        rows = row["n"]
        if rows == 0:
            return 0, None, None
        if row["ids_known"] != rows:
            # string_agg skips a NULL: the ids would no longer line up with the rows' inputs
            raise ValueError(
                f"ScoringError: {rows - row['ids_known']} row(s) have a NULL id; each request row "
                "needs an id to key its prediction (the table's own id column allows NULL)"
            )
        return rows, np.frombuffer(row["ids"], dtype=">i8"), unpacked_inputs(model, row, rows)

    def _insert_plan(
        self,
        schema,
        table,
        model,
        probability_columns,
        features=None,
        source=None,
        arm=("champion", True),
        home="predictions",
    ):
        """With stored features (features_from), the prediction rows also record the feature
        values, read from ``source``; that plan reads this statement's rows, so it is not kept.
        ``arm``: (role, served) of the rows (indb.lifecycle.challengers)."""
        role, served = arm
        role_text = "'champion'" if role == "champion" else "'challenger'"  # constants, never input
        key = (
            "insert",
            schema,
            table,
            model.name,
            model.version,
            tuple(probability_columns),
            role,
            served,
            home,
        )
        prediction_type = (
            "text"
            if model.classes and isinstance(model.classes[0], str)
            else ("int8" if model.classes else "float8")
        )
        # The champion's served rows take the columns' defaults ('champion', true): a prediction
        # table from before challengers (no role, served until its next deploy) still works.
        arm_columns = [] if arm == ("champion", True) else ["role", "served"]
        arm_values = "" if not arm_columns else f"{role_text}, {'true' if served else 'false'}, "
        targets = ["id", "model", "model_version", "runtime", *arm_columns, "prediction"] + [
            quote_ident(c) for c in probability_columns
        ]
        arrays = ["$1::int8[]", f"$4::{prediction_type}[]"] + [
            f"${5 + i}::float8[]" for i in range(len(probability_columns))
        ]
        names = ["i", "p"] + [f"p{i}" for i in range(len(probability_columns))]
        recorded = [quote_ident(c) for c in (features or {}).get("columns", [])]
        values = ["u." + n for n in names[1:]] + ["indb_request." + c for c in recorded]
        query = (
            f"INSERT INTO {quote_ident(schema)}.{quote_ident(table + '_' + home)} "
            f"({', '.join(targets + recorded)}) "
            f"SELECT u.i, $2, $3, 'onnx', {arm_values}{', '.join(values)} "
            f"FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})"
        )
        types = ["int8[]", "text", "int4", prediction_type + "[]"] + ["float8[]"] * len(probability_columns)
        if recorded:
            query += f" JOIN {source} ON indb_request.id = u.i"
            return self.plpy.prepare(query, types)
        return self.plan(key, query, types)

    def score_rows(self, fired, table, source=None, champion=True):
        """Score every row of ``source`` into the predictions table, which sits beside the
        request table in the schema the deployment recorded. ``source``: a relation the
        client rendered (the backfill's unscored rows, with their stored features joined as
        ``indb_request``; the champion alone scores them); None: the trigger's transition
        table ``new_rows``, scored by the champion (``champion``) but for the ids split
        challengers serve, and by each onnx challenger (indb.lifecycle.challengers; compiled
        ones score in the table's PL/pgSQL function)."""
        deployment = self.deployment(table, fired)
        schema = deployment["schema_name"]
        self.read_limit()
        probability_columns = deployment["probability_columns"]
        features = deployment["features"]
        arms = []
        if champion:
            model = self.model(deployment["model"], deployment["version"], deployment["content_hash"])
            arms.append((model, "champion", True, None))
        if source is None:
            source = "new_rows" if not features else self._with_features(table, features)
            challengers = deployment["challengers"]
            split = [(c["bucket_low"], c["bucket_high"]) for c in challengers if c["mode"] == "split"]
            if champion and split:
                arms[0] = (arms[0][0], "champion", True, (False, split))
            for c in challengers:
                if c["runtime"] != "onnx":
                    continue
                model = self.model(c["model"], c["version"], c["content_hash"])
                serves = c["mode"] == "split"
                arms.append(
                    (
                        model,
                        "challenger",
                        serves,
                        (True, [(c["bucket_low"], c["bucket_high"])]) if serves else None,
                    )
                )
        read = {}
        total = 0
        for model, role, served, chosen in arms:
            key = json.dumps(model.inputs, sort_keys=True)
            if key not in read:
                read[key] = self._read_columns(model, source)
            rows, ids, columns = read[key]
            if not rows:
                return 0
            if chosen is not None:
                keep, ranges = chosen
                mask = in_ranges(buckets(ids), ranges) == keep
                if not mask.any():
                    continue
                ids = ids[mask]
                columns = [
                    [v for v, m in zip(c, mask, strict=True) if m] if isinstance(c, list) else c[mask]
                    for c in columns
                ]
                rows = int(mask.sum())
            labels, probabilities = model.run(columns, rows)
            arm = (role, served)
            if (features or {}).get("columns") or not self._copy_predictions(
                schema, table, model, probability_columns, arm, ids, labels, probabilities
            ):
                args = [ids.tolist(), model.name, model.version, labels.tolist()]
                if probabilities is not None:
                    args += [probabilities[:, i].tolist() for i in range(probabilities.shape[1])]
                plan = self._insert_plan(schema, table, model, probability_columns, features, source, arm)
                self.plpy.execute(plan, args)
            total += rows if role == "champion" or served else 0
        return total

    def _copy_predictions(self, schema, table, model, probability_columns, arm, ids, labels, probabilities):
        """Write a statement's predictions with one binary ``COPY <table>_predictions FROM
        '<file>'``: numpy packs the rows in COPY's binary format into a file of the data
        directory's ``base/pgsql_tmp``, COPY reads it, and it is removed. The prepared unnest
        insert makes PL/Python turn every value into text and back (floats by ``repr`` and
        ``float8in``) and inserts row by row; COPY reads the binary values as they are and
        inserts a page of rows at a time. Same rows, in the same order, in the same transaction.

        Returns False (the caller then inserts as before) for fewer than COPY_MIN_ROWS rows, a
        role that may not read server files (``pg_read_server_files``; the trigger functions'
        owner, a superuser, may), a table with rules (COPY does not apply them), labels that
        are not ASCII text or numbers, or a column whose type is not the one the packing writes."""
        rows = len(ids)
        if rows < COPY_MIN_ROWS or not os.path.isfile("PG_VERSION"):
            return False  # PG_VERSION: the backend's working directory is the data directory
        home = table + "_predictions"
        types = self._copy_columns(schema, home)
        if types is None:
            return False
        fields = self._copy_fields(model, probability_columns, arm, ids, labels, probabilities)
        if fields is None or any(types.get(name) not in accepted for name, accepted, _, _ in fields):
            return False
        os.makedirs(COPY_DIRECTORY, mode=0o700, exist_ok=True)
        self.copies += 1
        path = os.path.join(COPY_DIRECTORY, f"{COPY_PREFIX}{os.getpid()}.{self.copies}")
        # O_EXCL: a file of that name, whoever made it, is never written through or read
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(COPY_HEADER)
                for start in range(0, rows, COPY_CHUNK):
                    out.write(copy_rows(fields, start, min(start + COPY_CHUNK, rows)))
                out.write(b"\xff\xff")
            columns = ", ".join(quote_ident(name) for name, _, _, _ in fields)
            copied = self.plpy.execute(
                f"COPY {quote_ident(schema)}.{quote_ident(home)} ({columns}) "
                f"FROM {self.plpy.quote_literal(path)} (FORMAT binary)"
            ).nrows()
        finally:
            os.unlink(path)
        if copied != rows:
            raise ValueError(
                f"ScoringError: {rows} predictions were written to {schema}.{home} as {copied} rows; "
                "nothing was written"
            )
        return True

    def _copy_columns(self, schema, home):
        """{column: type} of a predictions table COPY may write into, else None."""
        found = self.plpy.execute(
            self.plan(
                "copy_columns",
                "SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, NULL) AS type, "
                "c.relkind::text AS kind, c.relhasrules AS rules, "
                "pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'USAGE') AS can_read "
                "FROM pg_catalog.pg_class AS c "
                "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
                "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid "
                "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                ["text", "text"],
            ),
            [schema, home],
        )
        if not found or not found[0]["can_read"] or found[0]["rules"] or found[0]["kind"] not in ("r", "p"):
            return None
        return {r["name"]: r["type"] for r in found}

    @staticmethod
    def _copy_fields(model, probability_columns, arm, ids, labels, probabilities):
        """(column, accepted catalog types, kind, value) per column COPY writes: a constant or
        one value per row; kind "S" is text, the rest numpy's big-endian codes. A text
        prediction goes last, as its length varies by row (copy_rows). None: not packable."""
        text = ("text", "character varying")
        role, served = arm
        fields = [
            ("id", ("bigint",), ">i8", ids),
            ("model", text, "S", model.name.encode("utf-8")),
            ("model_version", ("integer",), ">i4", model.version),
            ("runtime", text, "S", b"onnx"),
        ]
        if arm != ("champion", True):  # else the columns' defaults, as the unnest insert does
            fields += [("role", text, "S", role.encode("utf-8")), ("served", ("boolean",), "u1", served)]
        width = 0 if probabilities is None else probabilities.shape[1]
        if width > len(probability_columns):
            return None
        fields += [
            (column, ("double precision",), ">f8", probabilities[:, i])
            for i, column in enumerate(probability_columns[:width])
        ]
        if labels.dtype.kind == "f":
            fields.append(("prediction", ("double precision",), ">f8", labels))
        elif labels.dtype.kind in "iu":
            fields.append(("prediction", ("bigint",), ">i8", labels))
        elif labels.dtype.kind in "OU" and all(
            isinstance(c, str) and c.isascii() and "\x00" not in c for c in model.classes or [None]
        ):
            # COPY decodes text from the session's client_encoding: ASCII reads the same in all
            # of them (other labels go by the unnest insert, which PL/Python encodes itself);
            # NUL, which text cannot hold, would be cut by numpy's padding instead of refused
            fields.append(("prediction", text, "S", np.char.encode(labels.astype(str), "ascii")))
        else:
            return None
        return fields

    def _with_features(self, table, features):
        """The transition table with the latest stored features its request rows' entity keys
        name: the relation the deploy rendered and recorded, run as it is."""
        if "relation" not in features:
            raise ValueError(
                f"IntegrityError: the deployment on table {table!r} was made by an older indb (its "
                "stored features are a template, no longer filled in at scoring); deploy it again"
            )
        return features["relation"]

    # -- explanations (indb.explanations) -----------------------------------------------------------
    def explainer(self, model):
        """indb.udfs.explain's Explainer of a loaded version: indb's own code from the catalog
        (indb.load_server_python), the version's row read again with its stored sample and
        checked against the bytes the session was built from."""
        key = ("explainer", model.name, model.version, model.sha256)
        found = self.models.get(key)
        if found is not None:
            return found
        rows = self.plpy.execute(
            self.plan(
                "explain_row",
                "SELECT onnx, sha256, inputs::text AS inputs, outputs::text AS outputs, "
                "classes::text AS classes, recipe::text AS recipe, sample::text AS sample "
                "FROM indb.model_versions WHERE model = $1 AND version = $2",
                ["text", "int4"],
            ),
            [model.name, model.version],
        )
        row = dict(rows[0])
        if hashlib.sha256(row["onnx"]).hexdigest() != model.sha256:
            raise ValueError(
                f"IntegrityError: model {model.name!r} version {model.version}: its stored bytes changed "
                "while this statement ran; nothing was written"
            )
        self.plpy.execute("SELECT indb.load_server_python()")
        from indb.udfs.explain import explainer_for

        row.update(model=model.name, version=model.version, onnx=bytes(row["onnx"]))
        found = self.models[key] = explainer_for(row)
        return found

    def explain_one(self, name, version, expected, args):
        """indb.explain_<model>(...) of a version explained in Python: (feature, contribution)
        rows for one row of inputs."""
        import pandas as pd

        self.read_limit()
        model = self.model(name, version, expected)
        model.check_nulls([1 if v is None else 0 for v in args])
        model.check_finite([[v] for v in args])
        frame = pd.DataFrame({spec["name"]: [v] for spec, v in zip(model.inputs, args, strict=True)})
        found = self.explainer(model).explain(frame)
        return list(zip(found.features, np.asarray(found.contributions)[0].tolist(), strict=True))

    def explain_statement(self, TD):
        """The champion's served rows of this statement explained into <table>_explanations."""
        import pandas as pd

        table = TD["args"][0]
        deployment = self.deployment(table, (TD["table_schema"], TD["table_name"]))
        if not deployment.get("explain_method"):
            return
        self.read_limit()
        model = self.model(deployment["model"], deployment["version"], deployment["content_hash"])
        features = deployment["features"]
        source = "new_rows" if not features else self._with_features(table, features)
        rows, ids, columns = self._read_columns(model, source)
        if not rows:
            return
        split = [
            (c["bucket_low"], c["bucket_high"]) for c in deployment["challengers"] if c["mode"] == "split"
        ]
        if split:  # the rows split challengers serve are theirs, not explained
            mask = ~in_ranges(buckets(ids), split)
            ids = ids[mask]
            columns = [
                [v for v, m in zip(c, mask, strict=True) if m] if isinstance(c, list) else c[mask]
                for c in columns
            ]
            if not len(ids):
                return
        frame = pd.DataFrame(
            {spec["name"]: values for spec, values in zip(model.inputs, columns, strict=True)}
        )
        found = self.explainer(model).explain(frame)
        contributions = np.asarray(found.contributions, dtype=np.float64)
        k = contributions.shape[1]
        schema = deployment["schema_name"]
        # one row per request: its slice of the flattened contributions (ordinality n)
        plan = self.plan(
            ("explain_insert", schema, table),
            f"INSERT INTO {quote_ident(schema)}.{quote_ident(table + '_contributions')} "
            "(id, model, model_version, contributions, base, error) "
            "SELECT u.i, $2, $3, $4[(u.n - 1) * $5 + 1 : u.n * $5], u.b, u.e "
            "FROM unnest($1::int8[], $6::float8[], $7::float8[]) WITH ORDINALITY AS u(i, b, e, n)",
            ["int8[]", "text", "int4", "float8[]", "int4", "float8[]", "float8[]"],
        )
        self.plpy.execute(
            plan,
            [
                ids.astype(np.int64).tolist(),
                model.name,
                model.version,
                contributions.reshape(-1).tolist(),
                k,
                np.asarray(found.base, dtype=np.float64).tolist(),
                None if found.error is None else np.asarray(found.error, dtype=np.float64).tolist(),
            ],
        )

    def score_statement(self, TD):
        self.score_rows((TD["table_schema"], TD["table_name"]), TD["args"][0])

    def score_challengers(self, TD):
        """The onnx challengers of a deployment whose champion is compiled."""
        self.score_rows((TD["table_schema"], TD["table_name"]), TD["args"][0], champion=False)

    def score_row(self, TD, champion=True):
        """A row-mode insert: the arm that serves the row's id (the champion, or the split
        challenger whose buckets hold it) sets its prediction columns, and each shadow
        challenger adds a row to ``<table>_shadow_predictions``: one model run per arm, the
        champion's never repeated. ``champion`` False: the onnx challengers of a compiled
        champion (whose own function skips the rows split challengers serve); compiled arms of
        an onnx champion run in the table's PL/pgSQL function, after this."""
        deployment = self.deployment(TD["args"][0], (TD["table_schema"], TD["table_name"]))
        self.read_limit()
        probability_columns = deployment["probability_columns"]
        new = TD["new"]
        serving, shadows = None, []
        challengers = deployment["challengers"]
        if challengers:
            b = int(buckets(np.array([new["id"]], dtype=np.int64))[0])
            for c in challengers:
                if c["mode"] == "split" and c["bucket_low"] <= b < c["bucket_high"]:
                    serving = c
                elif c["mode"] == "shadow" and c["runtime"] == "onnx":
                    shadows.append(c)
        # Only the columns set here go back: PL/Python converts every value of TD["new"] into
        # the new row (floats and timestamps through text), so the request's own columns stay.
        changes = {}
        if serving is None and champion:
            model = self.model(deployment["model"], deployment["version"], deployment["content_hash"])
            self._score_into(model, new, changes, probability_columns, "champion")
        elif serving is not None and serving["runtime"] == "onnx":
            model = self.model(serving["model"], serving["version"], serving["content_hash"])
            self._score_into(model, new, changes, probability_columns, "challenger")
        for c in shadows:
            model = self.model(c["model"], c["version"], c["content_hash"])
            labels, probabilities = self._run_one(model, new)
            args = [[new["id"]], model.name, model.version, labels.tolist()]
            if probabilities is not None:
                args += [probabilities[:, i].tolist() for i in range(probabilities.shape[1])]
            schema = deployment["schema_name"]
            plan = self._insert_plan(
                schema,
                TD["table_name"],
                model,
                probability_columns,
                arm=("challenger", False),
                home="shadow_predictions",
            )
            self.plpy.execute(plan, args)
        TD["new"] = changes
        return "MODIFY"

    def _run_one(self, model, new):
        values = [new[c] for c in model.columns]
        model.check_one(values)
        return model.run_feeds(model.feed_one(values), 1)

    def _score_into(self, model, new, changes, probability_columns, role):
        label, probabilities = model.run_one([new[c] for c in model.columns])
        changes["prediction"] = label
        changes["model"], changes["model_version"], changes["runtime"] = model.name, model.version, "onnx"
        if "role" in new:  # a row-mode table deployed before challengers has no role column
            changes["role"] = role
        if probabilities is not None:
            for column, value in zip(probability_columns, probabilities, strict=True):
                changes[column] = value

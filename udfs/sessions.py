"""onnxruntime sessions, one per (model, version, sha256), shared by the process.

A session costs milliseconds to build, so it is built once on first use and
kept; the least recently used ones are dropped past a bound, and a model's
sessions are dropped explicitly when its stored bytes change.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import onnxruntime as ort

from indb.errors import IntegrityError

MAX_SESSIONS = 64
_sessions: OrderedDict[tuple, ort.InferenceSession] = OrderedDict()
_lock = threading.Lock()


def verify(model: str, version: int, data: bytes, sha256: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"model {model!r} version {version}: stored ONNX bytes have sha256 {actual[:16]}..., "
            f"but {sha256[:16]}... was recorded at registration; the blob was altered or "
            "corrupted; register the model again"
        )


def build(data: bytes, threads: int = 1) -> ort.InferenceSession:
    """A session for batches of a few thousand rows. One thread where the database already
    calls the function from each of its threads (queries); more where it calls from one
    thread only (DuckDB runs a trigger body on one thread)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def session(key: tuple, load, threads: int = 1) -> ort.InferenceSession:
    """The cached session for ``key = (scope, model, version, sha256)`` and a thread count;
    ``load()`` gives the model's bytes."""
    key = (*key, threads)
    with _lock:
        found = _sessions.get(key)
        if found is not None:
            _sessions.move_to_end(key)
            return found
    _, model, version, sha256, _ = key
    data = load()
    verify(model, version, data, sha256)
    built = build(data, threads)
    with _lock:
        _sessions[key] = built
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)
    return built


def forget(scope: object, model: str | None = None) -> None:
    """Drop cached sessions of one database (and one model of it, if given)."""
    with _lock:
        for key in [k for k in _sessions if k[0] == scope and model in (None, k[1])]:
            del _sessions[key]

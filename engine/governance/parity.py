"""The ``parity`` check of a stage policy: does a version still compute what it computed when
it was registered?

Three things are re-checked, each from the catalog alone: the ONNX bytes against their
recorded sha256; onnxruntime on the stored verification sample (migration 003) against the
outputs recorded there at registration (the estimator's own; a version registered as ONNX has
none, and onnxruntime is then its own reference); and, where the version compiles to SQL and
``compiled`` is asked for, the compiled SQL on the same rows against onnxruntime
(:func:`indb.compiled.verify`). Any mismatch is the check's failure, as a sentence.

On PostgreSQL the server runs it (``indb.parity_failure``, PL/Python, called by
``indb.stage_check_failure``) with onnxruntime only: the compiled check writes a scratch table
and functions, which a SECURITY DEFINER function must not do in a schema others can reach.
"""

from __future__ import annotations

import io

import pandas as pd

from indb import registry
from indb.backends.base import Backend
from indb.errors import IndbError
from indb.sql import statement


def failure(backend: Backend, model: str, version: int, *, compiled: bool = True) -> str | None:
    """Why ``model`` ``version`` fails re-verification (None: it passes)."""
    where = f"{model} version {version}"
    try:
        mv = registry.get(backend, model, int(version))  # sha256 of the bytes
    except IndbError as e:
        return f"check parity failed: {where}: {e}"
    ((text,),) = backend.rows(
        statement("registry", "get_sample", backend.dialect), {"model": model, "version": int(version)}
    )
    if not text:
        return f"check parity failed: {where} has no stored verification sample"
    from indb.governance import files  # the sample's layout and its comparison

    try:
        sample = pd.read_json(io.StringIO(text if isinstance(text, str) else str(text)), orient="split")
        inputs, expected = files._split(sample, mv.signature)
        if registry.EXPECTED in expected:
            got = files._onnx_outputs(mv.signature, mv.onnx, inputs)
            problem = files._compare(mv.signature, got, expected)
            if problem:
                return (
                    f"check parity failed: onnxruntime on the {len(inputs)} stored sample rows of {where} "
                    f"disagrees with the outputs recorded at registration: {problem}"
                )
        else:
            files._onnx_outputs(mv.signature, mv.onnx, inputs)  # it must at least run
    except (IndbError, ValueError, KeyError) as e:
        return f"check parity failed: {where}: {e}"
    if compiled:
        return _compiled_failure(backend, mv, where)
    return None


def _compiled_failure(backend: Backend, mv, where: str) -> str | None:
    from indb import compiled as compiled_runtime
    from indb.udfs.compiler import ModelRefused, UnsupportedOperator

    if compiled_runtime.tree_nodes(mv) > compiled_runtime.MAX_TREE_NODES:
        return None  # never scored as SQL
    try:
        sql = compiled_runtime.compile_version(mv)
    except (UnsupportedOperator, ModelRefused):
        return None  # scored by onnxruntime only, checked above
    try:
        compiled_runtime.verify(backend, mv, sql)
    except IndbError as e:
        return f"check parity failed: {e}"
    return None

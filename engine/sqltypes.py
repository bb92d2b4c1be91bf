"""The SQL type names indb compares columns by (DuckDB's spelling; PostgreSQL's are mapped to
these by its backend)."""

from __future__ import annotations

from sqlglot import exp

INTEGER_TYPES = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT")
NUMERIC_TYPES = ("DOUBLE", "FLOAT", "REAL", *INTEGER_TYPES, "HUGEINT", "UBIGINT", "DECIMAL")

# What a column of each model input type may hold.
COMPATIBLE = {
    "DOUBLE": NUMERIC_TYPES,
    "BIGINT": INTEGER_TYPES,
    "BOOLEAN": ("BOOLEAN",),
    "VARCHAR": ("VARCHAR",),
}


def base_type(sql_type: str) -> str:
    """``DECIMAL(18,3)`` -> ``DECIMAL``."""
    return sql_type.split("(")[0].strip().upper()


def spelled(sql_type: str, dialect: str) -> str:
    """One of indb's type names (DuckDB's spelling) as ``dialect`` writes it, for statements
    written for that dialect alone (``DOUBLE`` is ``DOUBLE PRECISION`` in PostgreSQL)."""
    return exp.DataType.build(sql_type, dialect="duckdb").sql(dialect=dialect)

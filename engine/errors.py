"""indb's exceptions: a shallow tree, input errors also subclass the matching builtin."""

from __future__ import annotations

import difflib


class IndbError(Exception):
    """Base of every error indb raises on purpose."""


class InvalidNameError(IndbError, ValueError):
    """A model, table, column or alias name that is not a plain identifier."""


class NotFoundError(IndbError, LookupError):
    """An unknown model, version, alias, table or deployment."""

    def __init__(self, what: str, name: object, known: list[str] | None = None):
        message = f"{what} {name!r} does not exist"
        close = difflib.get_close_matches(str(name), known or [], n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif known is not None:
            shown = ", ".join(repr(k) for k in known[:10]) or "none"
            message += f" (known: {shown})"
        super().__init__(message)


class ModelError(IndbError, ValueError):
    """A model that cannot be registered: unsupported, malformed, or not matching its sample."""


class IntegrityError(IndbError):
    """Stored model bytes whose sha256 differs from the one recorded at registration."""


class QueryError(IndbError, ValueError):
    """A query a user handed in (source, spine, reference) that is not one read-only SELECT."""


class DeploymentError(IndbError, ValueError):
    """A table that cannot take a deployment, e.g. missing or mistyped feature columns."""


class ScoringError(IndbError, ValueError):
    """Rows that cannot be scored: NULL or mistyped inputs. The statement was rolled back."""


class DatabaseError(IndbError):
    """A statement the database refused; the message carries the database's own reason."""


class PermissionDeniedError(IndbError, PermissionError):
    """The database user lacks a privilege indb needs; the message says which grant fixes it."""


class JobError(IndbError, ValueError):
    """A job definition that cannot be stored: the message names the option and why."""

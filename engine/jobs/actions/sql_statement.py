"""``sql``: run one SQL statement (``statement``) written by the job's owner.

The text is parsed with sqlglot in the database's dialect and must be exactly one statement;
transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...) is refused, since the run
records its outcome in the run's own transaction. The statement then runs as written.

On DuckDB there are no roles (a database file is single-user, README "Security"): the
statement runs with the connection's rights. On a server with roles, ``indb.run_job`` runs it
in the server as the job's owner; from Python it runs only when the connected user is the
owner (else: a clear error), never with another user's rights.

Result: ``statement`` (its kind, e.g. ``DELETE``) and ``rows``: rows returned when the statement
returns rows (SELECT, RETURNING), else absent (the row count of a plain INSERT/UPDATE/DELETE
is not known here).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from indb.errors import IndbError
from indb.jobs.actions import Action, _checks, register

_CONTROL = (exp.Transaction, exp.Commit, exp.Rollback)
_CONTROL_WORDS = {"BEGIN", "START", "COMMIT", "ROLLBACK", "ABORT", "END", "SAVEPOINT", "RELEASE", "PREPARE"}


def parse(text: str, dialect: str) -> exp.Expression:
    """The one statement of ``text``; IndbError when it does not parse, holds several
    statements or controls the transaction."""
    text = _checks.text("sql", "statement", text)
    if _first_word(text, dialect) in _CONTROL_WORDS:
        raise _control()
    try:
        trees = [t for t in sqlglot.parse(text, dialect=dialect) if t is not None]
    except sqlglot.errors.SqlglotError as e:
        raise IndbError(f"action 'sql': statement does not parse: {str(e).splitlines()[0]}") from None
    if len(trees) != 1:
        raise IndbError(f"action 'sql' runs exactly one statement; found {len(trees)}")
    tree = trees[0]
    if any(isinstance(node, _CONTROL) for node in tree.walk()):
        raise _control()
    return tree


def _first_word(text: str, dialect: str) -> str:
    """The statement's first word, comments skipped (sqlglot parses some transaction control,
    e.g. SAVEPOINT, as a bare expression)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(text)
    except sqlglot.errors.SqlglotError:
        return ""
    return tokens[0].text.upper() if tokens else ""


def _control() -> IndbError:
    return IndbError(
        "action 'sql' refuses transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT...): "
        "each run is one transaction of its own"
    )


def run(backend, arguments: dict, context) -> dict:
    parse(arguments["statement"], backend.dialect)
    if backend.supports_procedures and context.owner != backend.user:
        raise IndbError(
            f"job {context.job!r} runs its SQL as its owner {context.owner!r}, not as {backend.user!r}: "
            f"run it in the server (CALL indb.run_job('{context.job}'))"
        )
    kind = _first_word(arguments["statement"], backend.dialect)
    returned = backend.run_user_sql(arguments["statement"])
    result: dict = {"statement": kind}
    if returned is not None:
        result["rows"] = len(returned)
    return result


ACTION = register(
    Action("sql", run, required=("statement",), description="run one SQL statement as the job's owner")
)

"""PostgreSQL (>= 15) through psycopg 3: models run inside the server in PL/Python.

Model functions are PL/Python functions over indb's runtime (``udfs/plpython_runtime.py``,
installed as ``indb.load_runtime()``); inserts are scored by generic trigger functions
that read ``indb.deployments`` once per statement, so switching versions is an UPDATE
of one catalog row and never DDL on a table applications write to.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from importlib import resources

import pandas as pd
import psycopg
from psycopg.types.string import TextLoader
from sqlglot import exp

from indb import errors
from indb.backends import postgres_roles, server_python
from indb.backends.base import Backend, Check, ModelRef, ScoringTarget, relation
from indb.identifiers import Quoted, join, quote
from indb.sql import migrations, render, statement, statements
from indb.udfs.compiler import dialects
from indb.udfs.compiler.dialects import Pick

_PG_TYPES = {"DOUBLE": "double precision", "BIGINT": "bigint", "VARCHAR": "text", "BOOLEAN": "boolean"}
# information_schema type names, in the names the rest of indb uses (DuckDB's).
_TYPE_NAMES = {
    "double precision": "DOUBLE",
    "real": "FLOAT",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "numeric": "DECIMAL",
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "character": "VARCHAR",
    "boolean": "BOOLEAN",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "bytea": "BLOB",
    "json": "JSON",
    "jsonb": "JSON",
    "ARRAY": "ARRAY",
}
# type names of psycopg's registry, in the names the rest of indb uses (DuckDB's).
_OID_NAMES = {
    "float8": "DOUBLE",
    "float4": "FLOAT",
    "int8": "BIGINT",
    "int4": "INTEGER",
    "int2": "SMALLINT",
    "numeric": "DECIMAL",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bpchar": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "bytea": "BLOB",
    "json": "JSON",
    "jsonb": "JSON",
}
_FRAME_TYPES = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double precision", "M": "timestamp"}
# $name, $1 and ? placeholders outside quotes, comments and dollar-quoted bodies.
_TOKENS = re.compile(
    r"(?P<skip>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$(?P<tag>\w*)\$.*?\$(?P=tag)\$)"
    r"|\$(?P<name>[A-Za-z_]\w*|\d+)|(?P<qmark>\?)|(?P<ready>%\(\w+\)s|%s)",
    re.S,
)
_SCHEMA_DENIED = re.compile(r"permission denied for schema (.+)")
_UDF_ERROR = re.compile(r"(ScoringError|IntegrityError|NotFound|JobError): (.*?)(?:\nCONTEXT:|$)", re.S)
_OUR_ERRORS = {
    "ScoringError": errors.ScoringError,
    "IntegrityError": errors.IntegrityError,
    "NotFound": errors.DatabaseError,
    "JobError": errors.JobError,
}
RUNTIME_MODULE = "plpython_runtime.py"
# indb's roles by what they are for, with their default names; a database records its own
# names in indb.roles (chosen at install: postgres_roles, PostgresBackend.role_names).
ROLE_NAMES = postgres_roles.DEFAULTS

# What a non-superuser owner of the catalog runs of sql/postgres/privileges.sql.
_OWNER_PRIVILEGES = (
    "revoke_schema",
    "revoke_tables",
    "revoke_sequences",
    "revoke_functions",
    "revoke_procedures",
)
# Statements of sql/postgres/privileges.sql run per deployment, not at install.
_NOT_AT_INSTALL = (
    "grant_deployment",
    "record_deployment",
    "backfill_deployment_schemas",
    "backfill_content_hashes",
    "backfill_deployment_hashes",
    "catalog_access",
    "comment_schema",
)


def _placeholders(sql: str, params) -> tuple[str, object]:
    """indb's ``$name`` / ``$1`` / ``?`` parameters as psycopg's ``%(name)s`` / ``%s``."""
    if params is None:
        return sql, None
    out, position = [], 0
    for match in _TOKENS.finditer(sql):
        out.append(sql[position : match.start()].replace("%", "%%"))
        position = match.end()
        if match["skip"]:
            out.append(match["skip"].replace("%", "%%"))
        elif match["ready"]:  # sqlglot writes psycopg's placeholders when it transpiles
            out.append(match["ready"])
        elif match["qmark"]:
            out.append("%s")
        elif match["name"].isdigit():
            out.append("%s")
        else:
            out.append(f"%({match['name']})s")
    out.append(sql[position:].replace("%", "%%"))
    return "".join(out), params


def _runtime_source() -> str:
    source = resources.files("indb.udfs").joinpath(RUNTIME_MODULE).read_text(encoding="utf-8")
    return source + '\nGD["indb_runtime"] = Runtime(plpy)\n'


class PostgresBackend(Backend):
    name = "postgresql"
    dialect = "postgres"
    supports_python_udfs = True
    supports_statement_triggers = True
    scoring_modes = ("bulk", "row")
    supports_procedures = True
    fail_function = "indb.fail"
    trigger_functions = True
    temp_schema = "pg_temp"
    supports_notify = True
    enforces_roles = True

    def __init__(self, url: str, roles: Mapping[str, str] | None = None):
        # Names asked for (roles=, INDB_ROLE_*), checked before connecting; the catalog's
        # names replace them once read (_settle_roles).
        self.requested_roles = postgres_roles.requested(roles, os.environ)
        self.role_names = postgres_roles.DEFAULTS | self.requested_roles
        self._roles_read = False  # whether role_names came from the catalog (or it has none)
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise errors.DatabaseError(f"cannot connect to PostgreSQL: {e}".strip()) from None
        for json_type in ("json", "jsonb"):  # JSON comes back as text, as from DuckDB
            self.conn.adapters.register_loader(json_type, TextLoader)
        info = self.conn.info
        self.url = f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"
        self.scope = self.url
        self.user = info.user
        self.has_plpython = False
        self.conn.execute('SET search_path TO "$user", public, indb')
        ((self.superuser,),) = self.rows("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")

    def role_slots(self) -> dict[str, Quoted]:
        """indb's roles as template slots ``{reader}``, ``{app}``, ``{developer}``, ``{approver}``,
        ``{admin}``: SQL in sql/postgres/ names roles only through these. The names this
        database's catalog records, else those asked for or the defaults."""
        if not self._roles_read:  # e.g. an install step that runs before install_privileges
            self._settle_roles(self.installed_roles())
        return {key: quote(name, dialect=self.dialect) for key, name in self.role_names.items()}

    def existing_role_slots(self) -> dict[str, Quoted] | None:
        """:meth:`role_slots` once every one of indb's roles exists, else None: install steps
        grant to them only then (a managed server's non-superuser owner creates none)."""
        slots = self.role_slots()
        ((present,),) = self.rows(
            "SELECT count(to_regrole(r)) = count(*) FROM unnest($1::text[]) AS r",
            [[s.text for s in slots.values()]],
        )
        return slots if present else None

    def _role(self, purpose: str) -> str:
        """A role's name as a DBA types it in a GRANT (names are plain lowercase identifiers)."""
        return self.role_names[purpose]

    def installed_roles(self) -> dict[str, str]:
        """The role names this database's catalog records: from indb.roles, or from the schema's
        comment for a role that may not read it; {} before indb installed its roles."""
        ((readable, comment),) = self.rows(statement("roles", "access", self.dialect))
        if readable:
            return dict(self.rows(statement("roles", "recorded", self.dialect)))
        return postgres_roles.from_comment(comment)

    def _settle_roles(self, installed: dict[str, str]) -> None:
        """Use the installed names, refusing a connect that asked for others."""
        if installed:
            postgres_roles.check_same(self.requested_roles, installed, "recorded in indb.roles at install")
            self.role_names = postgres_roles.DEFAULTS | installed
        self._roles_read = True

    def _record_roles(self) -> None:
        """The first install by a superuser (under the catalog lock): the chosen names go into
        indb.roles. A catalog whose privileges were installed before names were configurable
        has the default roles already. Refused: a superuser or BYPASSRLS role (grants would
        mean nothing to it, and row-level security keeps production from developers)."""
        ((before,),) = self.rows(
            statement("roles", "installed_before", self.dialect),
            {"reader": postgres_roles.DEFAULTS["reader"]},
        )
        if before:
            postgres_roles.check_same(
                self.requested_roles,
                postgres_roles.DEFAULTS,
                "indb was installed with the default names before names were configurable",
            )
            self.role_names = dict(postgres_roles.DEFAULTS)
        names = self.role_names
        existing = {
            name: (superuser, bypass)
            for name, superuser, bypass in self.rows(
                statement("roles", "existing", self.dialect), {"names": list(names.values())}
            )
        }
        for purpose, name in names.items():
            superuser, bypass = existing.get(name, (False, False))
            if superuser or bypass:
                raise errors.InvalidNameError(
                    f"{purpose} role name {name!r} is an existing "
                    f"{'superuser' if superuser else 'BYPASSRLS'} role: indb grants its {purpose} "
                    "privileges to a role of their own; choose a name that is free or a role "
                    "without SUPERUSER and BYPASSRLS"
                )
        for purpose, name in names.items():
            self.execute(
                statement("roles", "record", self.dialect),
                {"purpose": purpose, "role_name": name, "created": name not in existing},
            )

    # -- statements ---------------------------------------------------------------------------
    def execute(self, sql: str, params: dict | Sequence | None = None) -> None:
        self.conn.execute(*_placeholders(sql, params))

    def _cursor(self, sql, params):
        return self.conn.execute(*_placeholders(sql, params))

    def query(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame:
        cursor = self._cursor(sql, params)
        columns = [d.name for d in cursor.description]
        return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)

    def rows(self, sql: str, params: dict | Sequence | None = None) -> list[tuple]:
        return self._cursor(sql, params).fetchall()

    def run_user_sql(self, sql: str, params: dict | Sequence | None = None) -> pd.DataFrame | None:
        cursor = self._cursor(sql, params)
        if cursor.pgresult is not None and cursor.pgresult.status == psycopg.pq.ExecStatus.EMPTY_QUERY:
            raise errors.QueryError("the SQL text holds no statement, only comments or blanks")
        if cursor.description is None:
            return None
        columns = [d.name for d in cursor.description]
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
        for column, description in zip(columns, cursor.description, strict=True):
            if description.type_code == 1700:  # numeric: floats for analysts, as DuckDB gives
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def table_columns(self, table: str) -> dict[str, str] | None:
        found = self.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $table ORDER BY ordinal_position",
            {"table": table},
        )
        return {name: _TYPE_NAMES.get(kind, kind.upper()) for name, kind in found} or None

    def write_table(self, table: str, frame: pd.DataFrame, *, replace: bool) -> None:
        name = quote(table, dialect=self.dialect).text
        columns = [str(c) for c in frame.columns]
        quoted = [quote(c, dialect=self.dialect).text for c in columns]
        with self.transaction():
            if replace:
                types = [_FRAME_TYPES.get(frame[c].dtype.kind, "text") for c in frame.columns]
                self.execute(f"DROP TABLE IF EXISTS {name}")
                definitions = ", ".join(f"{q} {t}" for q, t in zip(quoted, types, strict=True))
                self.execute(f"CREATE TABLE {name} ({definitions})")
            with self.conn.cursor().copy(f"COPY {name} ({', '.join(quoted)}) FROM STDIN") as copy:
                for row in frame.itertuples(index=False, name=None):
                    copy.write_row([None if pd.isna(v) else v for v in row])

    def insert_rows(self, table: str, insert: str, *, rows: int | None = None) -> int:
        # the statement trigger scores the rows in the insert's own statement
        return self._cursor(insert, None).rowcount

    def query_columns(self, sql: str) -> dict[str, str]:
        cursor = self.conn.execute(f"SELECT * FROM ({sql}) AS indb_columns LIMIT 0")
        result = {}
        for column in cursor.description:
            info = self.conn.adapters.types.get(column.type_code)
            name = info.name if info is not None else str(column.type_code)
            result[column.name] = _OID_NAMES.get(name, name.upper())
        return result

    @contextmanager
    def staged(self, data) -> Iterator[Quoted]:
        """A temporary table filled by COPY (dropped afterwards)."""
        frame = data if isinstance(data, pd.DataFrame) else data.to_pandas()
        name = self.quote(f"indb_staged_{id(data)}")
        columns = [str(c) for c in frame.columns]
        quoted = [self.quote(c).text for c in columns]
        types = []
        for column in frame.columns:
            dtype = frame[column].dtype
            kind = _FRAME_TYPES.get(dtype.kind, "text")
            types.append("timestamptz" if kind == "timestamp" and getattr(dtype, "tz", None) else kind)
        definitions = ", ".join(f"{q} {t}" for q, t in zip(quoted, types, strict=True))
        self.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        self.execute(f"CREATE TEMP TABLE {name} ({definitions})")
        try:
            with self.conn.cursor().copy(f"COPY {name} ({', '.join(quoted)}) FROM STDIN") as copy:
                for row in frame.itertuples(index=False, name=None):
                    copy.write_row([None if pd.isna(v) else v for v in row])
            yield name
        finally:
            if self.conn.info.transaction_status in (
                psycopg.pq.TransactionStatus.IDLE,
                psycopg.pq.TransactionStatus.INTRANS,
            ):
                self.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")

    def translate(self, error: Exception) -> Exception:
        if isinstance(error, errors.IndbError) or not isinstance(error, psycopg.Error):
            return error
        text = str(error).strip()
        match = _UDF_ERROR.search(text)
        if match:
            return _OUR_ERRORS[match[1]](match[2].strip() + " (statement rolled back)")
        if isinstance(error, psycopg.errors.InsufficientPrivilege):
            if error.diag.source_function == "exec_stmt_raise":  # indb's own refusal says who may
                return errors.PermissionDeniedError(f"database user {self.user!r}: {text.splitlines()[0]}")
            schema = _SCHEMA_DENIED.fullmatch(error.diag.message_primary or "")
            if schema and schema[1] != "indb":  # where the tables indb makes for you would go
                return errors.PermissionDeniedError(
                    f"database user {self.user!r}: {text.splitlines()[0]}. indb makes and reads "
                    "its tables (feature sets, training sets, request tables) in the first schema "
                    "of search_path: its owner grants them, GRANT USAGE, CREATE ON SCHEMA "
                    f"{self.quote(schema[1]).text} TO {self.quote(self.user).text}; or set "
                    "search_path to a schema of yours"
                )
            return errors.PermissionDeniedError(
                f"database user {self.user!r}: {text.splitlines()[0]}. A superuser grants one of "
                f"indb's roles, e.g. GRANT {self._role('reader')} TO {self.quote(self.user).text}; "
                f"(read), {self._role('app')} (insert into request tables), "
                f"{self._role('developer')} (register), {self._role('admin')} (monitors, jobs, policies); "
                "see the README's Security section"
            )
        if isinstance(error, psycopg.errors.UndefinedFunction):
            text += self._near_functions(text)
        return errors.DatabaseError(text)

    def _near_functions(self, text: str) -> str:
        """A did-you-mean for a mistyped model function."""
        import difflib

        match = re.search(r"function (\w+)\(", text)
        if not match or self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return ""
        known = [
            r[0] for r in self.rows("SELECT proname FROM pg_proc WHERE pronamespace = 'indb'::regnamespace")
        ]
        close = difflib.get_close_matches(match[1], known, n=1)
        return f"\nDid you mean {close[0]!r}?" if close else ""

    def close(self) -> None:
        self.conn.close()

    # -- server-side runtime ------------------------------------------------------------------
    def read_only_catalog(self, latest: int) -> int | None:
        """For a role that may not install indb (not a superuser): the catalog's version,
        checked without any DDL, or an error naming the GRANT that is missing. None for a
        superuser, who installs and upgrades."""
        if self.superuser:
            return None
        self._settle_roles(self.installed_roles())  # hints below name this database's roles
        ((installs, schema, usage, readable, version_readable),) = self.rows(
            statement("privileges", "catalog_access", "postgres")
        )
        if installs:  # owns the catalog (or may create it): a managed server's owner
            return None
        role = self.quote(self.user).text
        if not schema:
            raise errors.PermissionDeniedError(
                f"database user {self.user!r}: this database has no indb catalog and only a superuser "
                "may install it (PL/Python and the trigger functions need one): connect once as the "
                f"superuser, then GRANT {self._role('reader')} TO {role};"
            )
        if not (usage and readable and version_readable):
            raise errors.PermissionDeniedError(
                f"database user {self.user!r}: permission denied for indb's catalog. A superuser "
                f"grants a role: GRANT {self._role('reader')} TO {role}; (or "
                f"{self._role('developer')}, {self._role('admin')}; see the README's Security section)"
            )
        applied = {int(v) for (v,) in self.rows("SELECT version FROM indb.schema_migrations")}
        missing = sorted({m.version for m in migrations()} - applied)
        if missing:
            raise errors.DatabaseError(
                f"indb's catalog in this database lacks migration(s) {missing} this indb needs "
                f"(latest {latest}). The superuser who installed indb upgrades it by connecting "
                f"once (user {self.user!r} may not)"
            )
        self.has_plpython = self._plpython_installed()
        return max(applied, default=0)

    def install_runtime(self) -> None:
        """PL/Python and indb's runtime functions, then indb's roles and privileges and the audit
        log's triggers: each installed only when missing or outdated, under the catalog's
        advisory lock (many processes may connect at once, and two ``CREATE OR REPLACE
        FUNCTION`` of one function collide: ``tuple concurrently updated``)."""
        self._ensure_runtime()
        self.install_privileges()
        self.install_jobs()
        self.install_governance()
        self.install_collaboration()
        self.install_model_card()
        server_python.install(self)  # job actions in Python, inside the server
        from indb.monitoring import monitors

        monitors.install_procedures(self)  # before pg_cron's next run, with monitors' queries

    def install_privileges(self) -> None:
        """sql/postgres/audit.sql and privileges.sql, run again when either file, the set of
        catalog tables or the role names changed (a fingerprint in the schema's comment). The
        first superuser install records the role names (indb.roles) in the same transaction."""
        installed = self.installed_roles()
        self._settle_roles(installed)
        # A superuser's install always records the names first: with none recorded yet, no
        # fingerprint matches (recorded=False is part of it) and the install runs.
        texts, fingerprint = self._privileges(recorded=bool(installed))
        if fingerprint in (self._schema_comment() or ""):
            return
        with self.transaction():  # under the catalog lock, as the runtime: connects may race
            self.lock_catalog()
            installed = self.installed_roles()  # another connect may have installed them
            self._settle_roles(installed)
            comment = self._schema_comment()
            recording = not installed and self.superuser
            if recording:
                self._record_roles()
                installed = self.role_names
            texts, fingerprint = self._privileges(recorded=bool(installed))
            if not (comment and fingerprint in comment):
                self._install_privileges(texts, fingerprint)
            if recording:  # after the audit log's triggers exist (a fresh install makes them)
                from indb import audit

                audit.record(self, "record roles", "indb.roles", dict(self.role_names))

    def _schema_comment(self) -> str | None:
        ((comment,),) = self.rows("SELECT obj_description('indb'::regnamespace, 'pg_namespace')")
        return comment

    def _privileges(self, *, recorded: bool) -> tuple[list[str], str]:
        """The install statements with this database's role names, and their fingerprint."""
        slots = self.role_slots()
        texts = [
            statement("audit", n, "postgres") for n in statements("audit", "postgres") if n != "verify_chain"
        ]
        texts += [
            render("privileges", n, "postgres", **slots)
            for n in statements("privileges", "postgres")
            if n not in _NOT_AT_INSTALL
        ]
        ((objects,),) = self.rows(
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
            "WHERE relnamespace = 'indb'::regnamespace AND relkind IN ('r', 'p', 'S', 'v')"
        )
        names = postgres_roles.comment_fragment(self.role_names)
        text = "\n".join([*texts, objects or "", str(self.superuser), names, str(recorded)])
        return texts, "indb privileges " + hashlib.sha256(text.encode()).hexdigest()[:16]

    def _install_privileges(self, texts: list[str], fingerprint: str) -> None:
        roles = ""
        if self.superuser:
            roles = postgres_roles.comment_fragment(self.role_names) + "; "
        else:
            # A non-superuser owner (managed PostgreSQL) gets the audit triggers and nothing
            # for PUBLIC, but no roles or event trigger (those need a superuser).
            texts = [
                statement("audit", n, "postgres")
                for n in statements("audit", "postgres")
                if n not in ("verify_chain", "create_ddl_triggers")  # event triggers: superuser
            ]
            texts += [statement("privileges", n, "postgres") for n in _OWNER_PRIVILEGES]
        for text in texts:
            self.execute(text)
        for backfill in (
            "backfill_deployment_schemas",
            "backfill_content_hashes",
            "backfill_deployment_hashes",
        ):
            self.execute(statement("privileges", backfill, "postgres"))
        # The role names are repeated here for roles that may not read indb.roles (hints).
        comment = f"indb's catalog: models, deployments, monitors; {roles}{fingerprint}"
        self.execute(self.render("privileges", "comment_schema", comment=self.literal(comment)))

    def install_jobs(self) -> None:
        """sql/postgres/jobs.sql: ``indb.schedule``, ``indb.run_job`` and their helpers (jobs a
        DBA runs from psql and pg_cron)."""
        # only this file's own statements: sql/jobs.sql (DuckDB's, transpiled) is not installed
        names = self._native_statements("jobs")
        texts = [
            statement("jobs", n, self.dialect)
            for n in names
            if n.startswith(("create_", "revoke_"))
            or (n.startswith("comment_") and n != "comment_run_procedure")
        ]
        # next_run by croniter in PL/Python where there is PL/Python, else a NULL stand-in
        skip = "create_next_run_null" if self.has_plpython else "create_next_run_python"
        texts.remove(statement("jobs", skip, self.dialect))
        self._install_when_changed(
            "jobs",
            texts,
            marker="comment_run_procedure",
            installed="installed_server_jobs",
            describe="Runs a job once, recording its runs in indb.job_runs: CALL indb.run_job('name')",
        )

    def install_governance(self) -> None:
        """sql/postgres/governance.sql: the functions that change stages (issue 14.1)."""
        self._install_when_changed(
            "governance",
            self._definitions("governance", marker="comment_decide"),
            marker="comment_decide",
            installed="installed_governance",
            describe="Decides a stage request as session_user (indb.approve, indb.reject)",
        )

    def install_collaboration(self) -> None:
        """sql/postgres/collaboration.sql: the functions that write owners and comments as
        session_user (issue 14.6)."""
        self._install_when_changed(
            "collaboration",
            self._definitions("collaboration", marker="comment_change_owner"),
            marker="comment_change_owner",
            installed="installed_collaboration",
            describe="Adds or removes an owner as session_user (indb.add_owner, remove_owner)",
        )

    def install_model_card(self) -> None:
        """sql/postgres/model_card.sql: ``indb.document_model``, the only way to write a model
        card's free text, as session_user (issue 14.5)."""
        self._install_when_changed(
            "model_card",
            self._definitions("model_card", marker="comment_document_model"),
            marker="comment_document_model",
            installed="installed_model_card",
            describe="Documents a model for its model card as session_user (developers)",
        )

    def _native_statements(self, file: str) -> list[str]:
        """The statements written for PostgreSQL in sql/postgres/<file>.sql (not transpiled)."""
        return [n for n, (_, native) in statements(file, self.dialect).items() if native]

    def _definitions(self, file: str, *, marker: str) -> list[str]:
        """A file's create_, revoke_ and comment_ statements but its marker comment."""
        return [
            statement(file, n, self.dialect)
            for n in self._native_statements(file)
            if n.startswith(("create_", "revoke_", "comment_")) and n != marker
        ]

    def _install_when_changed(
        self, file: str, texts: list[str], *, marker: str, installed: str, describe: str
    ) -> None:
        """Run ``texts``, and the file's grant_ statements once indb's roles exist (a managed
        server's owner has none), only when missing or changed: their fingerprint rides in the
        comment that statement ``marker`` sets and statement ``installed`` reads back. Looked at
        again under the catalog lock: many processes connect at once, and two ``CREATE OR
        REPLACE FUNCTION`` of one function collide ("tuple concurrently updated")."""
        slots = self.existing_role_slots()
        if slots is not None:
            grants = [n for n in self._native_statements(file) if n.startswith("grant_")]
            texts = texts + [self.render(file, n, **slots) for n in grants]
        fingerprint = f"indb {file} " + hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        comment = f"{describe}; {fingerprint}"
        query = statement(file, installed, self.dialect)

        def current() -> bool:
            return [r[0] for r in self.rows(query)] == [comment]

        if current():
            return
        with self.transaction():
            self.lock_catalog()
            if current():
                return
            for text in texts:
                self.execute(text)
            self.execute(self.render(file, marker, comment=self.literal(comment)))

    # An upgrade that drops the lock triggers of older deployments takes each table's lock in
    # turn; a writer holding one and waiting for another is a deadlock PostgreSQL breaks by
    # cancelling one side. The upgrade is then run again (it changed nothing), this many times.
    upgrade_attempts = 3

    def _plpython_installed(self) -> bool:
        return bool(self.rows("SELECT 1 FROM pg_extension WHERE extname = 'plpython3u'"))

    def _ensure_runtime(self) -> None:
        self.has_plpython = self._plpython_installed()
        for attempt in range(1, self.upgrade_attempts + 1):
            if self._runtime_current():
                return
            try:
                with self.transaction():
                    self.execute(statement("deploy", "lock_catalog", self.dialect))
                    self.has_plpython = self._plpython_installed()
                    if not self._runtime_current():
                        self._install_runtime()
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == self.upgrade_attempts:
                    raise
                time.sleep(0.1 * attempt)

    def _runtime_statements(self) -> tuple[list[str], list[str]]:
        """(statements every database gets, those that need PL/Python)."""
        plain = [
            self.render("scoring", "create_fail_function"),
            self.render("deploy", "drop_lock_triggers"),
        ]
        python = [self.render("scoring", "create_runtime_loader", body=self.literal(_runtime_source()))]
        python += [
            self.render("scoring", name)
            for name in (
                "create_bulk_trigger_function",
                "create_challenger_trigger_function",
                "create_row_trigger_function",
                "create_challenger_row_function",
                "create_backfill_function",
                "create_install_function",
                "create_versions_function",
                "create_batch_load_function",
                "create_batch_chunks_function",
                "create_batch_install_function",
            )
        ]
        python.append(self.render("deploy", "create_warm_up_function"))
        python.append(self.render("explain", "create_explain_trigger_function"))
        return plain, python

    def _fingerprint(self, statements: list[str]) -> str:
        return "indb runtime " + hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]

    def _runtime_current(self) -> bool:
        plain, python = self._runtime_statements()
        ((fail, loader),) = self.rows(
            "SELECT obj_description(to_regprocedure('indb.fail(text)'), 'pg_proc'), "
            "obj_description(to_regprocedure('indb.load_runtime()'), 'pg_proc')"
        )
        if fail is None or self._fingerprint(plain) not in fail:
            return False
        return not self.has_plpython or (loader is not None and self._fingerprint(python) in loader)

    def _install_runtime(self) -> None:
        plain, python = self._runtime_statements()
        for text in plain:
            self.execute(text)
        comment = "Raises an error from inside an SQL expression (sql/postgres/scoring.sql); "
        self.execute(
            self.render(
                "scoring",
                "comment_function",
                name=self.quote("indb", "fail"),
                argument_types=Quoted("text"),
                comment=self.literal(comment + self._fingerprint(plain)),
            )
        )
        if not self.has_plpython:
            try:
                with self.transaction():
                    self.execute(self.render("scoring", "create_plpython"))
                self.has_plpython = True
            except psycopg.Error:
                return  # models will say how to enable it; the catalog works without it
        for text in python:
            self.execute(text)
        comment = "Loads indb's scoring runtime (onnxruntime sessions) into the session; "
        self.execute(
            self.render(
                "scoring", "comment_runtime_loader", comment=self.literal(comment + self._fingerprint(python))
            )
        )

    def trigger_sql(
        self,
        trigger: str,
        table: Quoted,
        body: Sequence[str] | None,
        *,
        function: Quoted | None = None,
        row: bool = False,
        definer: bool = False,
        guard: tuple[str, str] | None = None,
        arguments: Sequence[Quoted] = (),
        before: bool = False,
        attach: bool = True,
        skippable: bool = False,  # every insert fires the trigger here: nothing to skip
    ) -> list[str]:
        """One PL/pgSQL function ``function`` runs every statement of ``body``; the trigger
        calls it (see :meth:`Backend.trigger_sql`)."""
        if function is None:
            raise ValueError("triggers here call a function: give its schema-qualified name")
        if before and row:
            raise ValueError("row triggers fire before each row already: give row or before, not both")
        result = []
        if body is not None:
            statements, returned = Quoted("; ".join(body)), Quoted("NEW" if row else "NULL")
            if guard is None:
                text = self.render("triggers", "body", statements=statements, result=returned)
            else:
                schema, name = guard
                text = self.render(
                    "triggers",
                    "guarded_body",
                    schema=self.literal(schema),
                    table=self.literal(name),
                    statements=statements,
                    result=returned,
                )
            result.append(
                self.render(
                    "triggers",
                    "create_definer_function" if definer else "create_function",
                    function=function,
                    body=self.literal(text),
                )
            )
        if attach:
            kind = "create_row_trigger" if row else "create_statement_trigger"
            result.append(
                self.render(
                    "triggers",
                    "create_before_statement_trigger" if before else kind,
                    trigger=self.quote(trigger),
                    table=table,
                    function=function,
                    arguments=join(arguments),
                )
            )
        return result

    def scalar_function(self, name: str) -> Quoted:
        return self.quote("indb", name)

    def register_scalar(self, name: str, function, arguments: list[str], returns: str, source: str) -> None:
        """A PL/Python function over ``source``; without PL/Python, one that returns NULL."""
        types = [_PG_TYPES[a] for a in arguments]
        parameters = Quoted(", ".join(f"a{i} {t}" for i, t in enumerate(types)))
        call = ", ".join(f"a{i}" for i in range(len(types)))
        if self.has_plpython:
            body = f"{source}\nreturn {function.__name__}({call})\n"
            template = "create_python_scalar"
        else:
            body = "SELECT NULL"
            template = "create_null_scalar"
        fingerprint = "indb " + hashlib.sha256(body.encode()).hexdigest()[:16]
        signature = f"indb.{name}({', '.join(types)})"
        query = "SELECT obj_description(to_regprocedure($s), 'pg_proc')"
        ((installed,),) = self.rows(query, {"s": signature})
        if installed == fingerprint:
            return
        with self.transaction():  # under the catalog lock: two sessions may install it at once
            self.lock_catalog()
            ((installed,),) = self.rows(query, {"s": signature})
            if installed == fingerprint:
                return
            name_sql = self.quote("indb", name)
            self.execute(
                self.render(
                    "scoring",
                    template,
                    name=name_sql,
                    parameters=parameters,
                    return_type=Quoted(_PG_TYPES[returns]),
                    body=self.literal(body),
                )
            )
            self.execute(
                self.render(
                    "scoring",
                    "comment_function",
                    name=name_sql,
                    argument_types=Quoted(", ".join(types)),
                    comment=self.literal(fingerprint),
                )
            )

    @property
    def runs_onnx(self) -> bool:
        return self.has_plpython

    def _require_plpython(self) -> None:
        if not self.has_plpython:
            raise errors.DatabaseError(
                "PL/Python (plpython3u) is not installed in this database, so models cannot run "
                "inside it; run `indb doctor --db URL` to see what to install"
            )

    # -- models -------------------------------------------------------------------------------
    def prepare_model(self, ref: ModelRef) -> None:
        """Nothing to prepare: the runtime loads models itself on first use."""

    def _functions(self, name: str) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT oid::regprocedure::text FROM pg_proc "
                "WHERE proname = $name AND pronamespace = 'indb'::regnamespace",
                {"name": name},
            )
        ]

    def _function_sql(
        self, ref: ModelRef, name: str, template: str, returns: str, body: str, note: str
    ) -> list[str]:
        """Replace every overload of ``indb.<name>`` by one function of the version's signature."""
        sig = ref.signature
        parameters = join(Quoted(f"{self.quote(i.name)} {_PG_TYPES[i.argument_type]}") for i in sig.inputs)
        argument_types = Quoted(", ".join(_PG_TYPES[i.argument_type] for i in sig.inputs))
        result = [self.render("scoring", "drop_function", signature=Quoted(f)) for f in self._functions(name)]
        result.append(
            self.render(
                "scoring",
                template,
                name=self.quote("indb", name),
                parameters=parameters,
                return_type=Quoted(returns),
                body=self.literal(body),
            )
        )
        comment = f"indb model {ref.model} version {ref.version}{note}: " + sig.describe(name)
        result.append(
            self.render(
                "scoring",
                "comment_function",
                name=self.quote("indb", name),
                argument_types=argument_types,
                comment=self.literal(comment),
            )
        )
        return result

    def model_sql(self, ref: ModelRef, *, default: bool) -> list[str]:
        if not self.has_plpython:
            return []  # without PL/Python, a model is callable once deployed with runtime="sql"
        if not self.superuser:  # the server builds them from the catalog row (developer role)
            return [
                self.render(
                    "scoring",
                    "install_model_functions",
                    model=self.literal(ref.model),
                    version=Quoted(str(int(ref.version))),
                )
            ]
        sig = ref.signature
        returns = {"predict": _PG_TYPES[sig.prediction_type], "predict_proba": "double precision[]"}
        kinds = ["predict"] + (["predict_proba"] if sig.task == "classification" else [])
        call = ", ".join(f"${n + 1}" for n in range(len(sig.inputs)))
        result = []
        for kind in kinds:
            pinned = f"{kind}_{ref.model}_v{ref.version}"
            want = "proba" if kind == "predict_proba" else "label"
            body = (
                'if "indb_runtime" not in GD:\n    plpy.execute("SELECT indb.load_runtime()")\n'
                f'return GD["indb_runtime"].predict_one({ref.model!r}, {int(ref.version)}, '
                f"{ref.content_hash!r}, list(args), {want!r})\n"
            )
            result += self._function_sql(ref, pinned, "create_model_function", returns[kind], body, "")
            if default:
                wrapper = f"SELECT indb.{pinned}({call})"
                result += self._function_sql(
                    ref, f"{kind}_{ref.model}", "create_default_function", returns[kind], wrapper, ""
                )
        # predict_batch_<model>: built in the server from the catalog row (udfs/plpython_runtime.py)
        result.append(
            self.render(
                "scoring",
                "install_batch_functions",
                model=self.literal(ref.model),
                version=Quoted(str(int(ref.version))),
                is_default=Quoted("true" if default else "false"),
            )
        )
        return result

    # -- scoring on insert --------------------------------------------------------------------
    def scoring_sql(self, target: ScoringTarget, *, backfill: bool, previous: str | None) -> list[str]:
        """Rows already in the table are scored by :meth:`backfill`, after the deploy commits.

        Challengers (indb.lifecycle.challengers) score in the same statement: every compiled arm
        (the champion's too) is an INSERT in the table's PL/pgSQL function ``indb.score_<table>``,
        every onnx arm runs in the PL/Python runtime, which reads the challengers with the
        deployment. A compiled champion's trigger ``<table>_score`` calls the first, an onnx
        champion's the second; the other kind, when a challenger needs it, gets its own
        trigger, ``<table>_score_arm_sql`` or ``<table>_score_arm_onnx`` (fired by name after
        ``<table>_score`` and before ``<table>_score_humility``)."""
        q = self.quote
        result = []
        if target.compiled is not None:
            result += self._compiled_scoring_sql(target, previous)
        elif previous != target.runtime:
            # The onnx trigger functions read the deployment per statement: switching versions
            # later needs no DDL on the table.
            self._require_plpython()
            if previous is not None:
                result += self.unscoring_sql(target.table)
            function = "score_inserted_row" if target.mode == "row" else "score_inserted_rows"
            result += self.trigger_sql(
                f"{target.table}_score",
                q(target.table),
                None,
                function=q("indb", function),
                row=target.mode == "row",
                arguments=[self.literal(target.table)],
            )
        result += self._challenger_triggers(target, previous)
        result += self._explain_triggers(target, previous)
        if previous == target.runtime and self._has_lock_trigger(target.table):
            # deployed before switches took the table's lock: its per-statement lock trigger goes
            # (unscoring_sql dropped it already when the runtime changes)
            result.append(self.drop_trigger_sql(f"{target.table}_lock", q(target.table)))
        return self._deployment_record(target) + result

    def _explain_triggers(self, target: ScoringTarget, previous: str | None) -> list[str]:
        """``<table>_score_explain`` (fired by name after the scoring triggers, before humility):
        the champion's served rows' explanations (indb.explanations) written by a SECURITY
        DEFINER function, so the application's role never writes ``<table>_contributions``;
        dropped when the deployment has none. A switch of version replaces the function only
        (no DDL on the table) unless the kind of explanation changes."""
        q = self.quote
        table = target.table
        name = f"{table}_score_explain"
        plan = target.explain
        current = self._explain_function(table)
        if previous is not None and previous != target.runtime:
            current = None  # unscoring_sql dropped every trigger of the table before this
        if plan is None:
            return [] if current is None else [self.drop_trigger_sql(name, q(table))]
        wanted = self._wanted_explain_function(target)
        if not plan.in_sql:
            self._require_plpython()
            if current == wanted:
                return []
            return self.trigger_sql(
                name, q(table), None, function=q("indb", wanted), arguments=[self.literal(table)]
            )
        schema = self.current_schema()
        rows = target.arms()[0].relation(self.dialect, "new_rows")
        return self.trigger_sql(
            name,
            q(table),
            [plan.insert_sql(table, rows, self.dialect, target.model, schema)],
            function=q("indb", wanted),
            definer=True,
            guard=(schema, table),
            attach=current != wanted,
        )

    def _wanted_explain_function(self, target: ScoringTarget) -> str | None:
        if target.explain is None:
            return None
        return f"explain_rows_{target.table}" if target.explain.in_sql else "explain_inserted_rows"

    def _explain_function(self, table: str) -> str | None:
        """The function ``<table>_score_explain`` calls now, if the trigger is there."""
        if self.table_columns(table) is None:
            return None
        params = {"table": self._qualified(table), "trigger": f"{table}_score_explain"}
        found = self.rows(statement("explain", "trigger_function", self.dialect), params)
        return found[0][0] if found else None

    def explain_function_sql(self, ref: ModelRef, plan, *, default: bool) -> list[str]:
        sig = ref.signature
        parameters = join(Quoted(f"{self.quote(i.name)} {_PG_TYPES[i.argument_type]}") for i in sig.inputs)
        argument_types = Quoted(", ".join(_PG_TYPES[i.argument_type] for i in sig.inputs))
        template = "create_explain_macro"
        if plan.in_sql:
            body = self.literal(dialects.render(plan.rows_body(), self.dialect))
        elif not self.has_plpython:
            return []
        else:  # Python source naming the version and its content hash, as predict_* bodies do
            template = "create_explain_python_function"
            body = self.literal(
                'if "indb_runtime" not in GD:\n    plpy.execute("SELECT indb.load_runtime()")\n'
                f'return GD["indb_runtime"].explain_one({ref.model!r}, {int(ref.version)}, '
                f"{ref.content_hash!r}, list(args))\n"
            )
        result = []
        for name in [f"explain_{ref.model}_v{int(ref.version)}"] + (
            [f"explain_{ref.model}"] if default else []
        ):
            result += [
                self.render("scoring", "drop_function", signature=Quoted(f)) for f in self._functions(name)
            ]
            qualified = self.quote("indb", name)
            result.append(self.render("explain", template, name=qualified, parameters=parameters, body=body))
            comment = (
                f"indb model {ref.model} version {ref.version}: contributions of each input to the raw "
                f"output ({plan.method}): SELECT * FROM indb.{name}(...)"
            )
            result.append(
                self.render(
                    "explain",
                    "comment_explain_macro",
                    name=qualified,
                    argument_types=argument_types,
                    comment=self.literal(comment),
                )
            )
        return result

    def _wanted_triggers(self, target: ScoringTarget) -> dict[str, bool]:
        """Which challenger triggers the table needs: compiled challengers of an onnx champion
        (``_score_arm_sql``), onnx challengers of a compiled champion (``_score_arm_onnx``)."""
        kinds = {arm.compiled is not None for arm in target.arms()[1:]}
        champion = target.compiled is not None
        return {
            "score_arm_sql": not champion and True in kinds,
            "score_arm_onnx": champion and False in kinds,
        }

    def _challenger_triggers(self, target: ScoringTarget, previous: str | None) -> list[str]:
        q = self.quote
        table = target.table
        wanted = self._wanted_triggers(target)
        result = []
        for suffix, want in wanted.items():
            # a change of the champion's runtime drops every trigger of the table first
            present = previous == target.runtime and self._has_trigger(table, f"{table}_{suffix}")
            if not want:
                if present:
                    result.append(self.drop_trigger_sql(f"{table}_{suffix}", q(table)))
                continue
            if suffix == "score_arm_onnx":
                self._require_plpython()
                if not present:
                    row = target.mode == "row"
                    result += self.trigger_sql(
                        f"{table}_{suffix}",
                        q(table),
                        None,
                        function=q("indb", "score_challenger_row" if row else "score_challenger_rows"),
                        row=row,
                        arguments=[self.literal(table)],
                    )
                continue
            arms = [a for a in target.arms()[1:] if a.compiled is not None]
            body = [self._compiled_check(a) for a in arms] + [self._compiled_arm(a) for a in arms]
            result += self.trigger_sql(
                f"{table}_{suffix}",
                q(table),
                body,
                function=q("indb", f"score_{table}"),
                row=target.mode == "row",
                definer=True,
                guard=(self.current_schema(), table),
                attach=not present,
            )
        return result

    # -- switching versions (the lock order is explained in sql/postgres/deploy.sql) ----------
    separate_backfill = True
    keyed_ids = True
    time_indexes = True
    backfill_batch = 20_000

    def _qualified(self, table: str) -> str:
        return self.quote(self.current_schema(), table).text

    def _has_lock_trigger(self, table: str) -> bool:
        return self._has_trigger(table, f"{table}_lock")

    def _has_trigger(self, table: str, trigger: str) -> bool:
        if self.table_columns(table) is None:
            return False
        params = {"table": self._qualified(table), "trigger": trigger}
        ((count,),) = self.rows(statement("deploy", "has_trigger", self.dialect), params)
        return bool(count)

    def lock_catalog(self) -> None:
        self.execute(statement("deploy", "lock_catalog", self.dialect))

    def require_deployer(self, action: str) -> None:
        """Only indb's owner creates trigger functions that run as it (README, Security): any
        other role would be refused halfway, by PostgreSQL, in words that do not say who may."""
        if self.superuser:
            return
        ((owns, owner),) = self.rows(statement("deploy", "owns_indb", self.dialect))
        if not owns:
            raise errors.PermissionDeniedError(
                f"database user {self.user!r}: permission denied to {action}: it changes triggers "
                f"and functions that run as indb's owner ({owner}), so only a superuser or that "
                "owner may (README, Security); nothing was changed"
            )

    # A switch waits this long (polling, not queued) for a VACUUM, ANALYZE or index build of the
    # request table to end before it takes its lock, then says so.
    maintenance_wait = 30.0

    def lock_deployment(self, table: str, *, ddl: bool) -> None:
        """The request table's lock (sql/postgres/deploy.sql): SHARE ROW EXCLUSIVE, which every
        insert's ROW EXCLUSIVE waits for, or ACCESS EXCLUSIVE when the deploy changes the table.
        A table the deploy creates needs none (no one sees it before the deploy commits)."""
        if self.table_columns(table) is None:
            return
        name = self._qualified(table)
        self._wait_for_maintenance(table, name)
        which = "lock_request_table" if ddl else "lock_deployment"
        self.execute(self.render("deploy", which, table=Quoted(name)))

    def _wait_for_maintenance(self, table: str, name: str) -> None:
        """Queued behind a VACUUM (an anti-wraparound autovacuum is never cancelled), an ANALYZE
        or an index build, a switch's lock request would hold every later insert behind it for
        as long as that runs; this waits for it without queueing. (One starting between this
        check and the lock is the one case left, as is an ordinary autovacuum, which PostgreSQL
        cancels after deadlock_timeout when it blocks a lock request.)"""
        deadline = time.monotonic() + self.maintenance_wait
        while True:
            holders = self.rows(statement("deploy", "lock_holders", self.dialect), {"table": name})
            if not holders:
                return
            if time.monotonic() >= deadline:
                held = ", ".join(
                    f"pid {pid} ({kind}: {query!r})" if kind else f"pid {pid} (another role's session)"
                    for pid, kind, query in holders
                )
                raise errors.DatabaseError(
                    f"{table!r} is held in SHARE UPDATE EXCLUSIVE mode (a VACUUM, ANALYZE or index "
                    f"build) by {held} for over {self.maintenance_wait:.0f} s: a switch queued behind "
                    "it would stop every insert into the table until it ends; nothing was changed, "
                    "retry when it has finished"
                )
            time.sleep(0.05)

    def scoring_ddl(self, target: ScoringTarget, previous: str | None) -> bool:
        if self._wanted_explain_function(target) != self._explain_function(target.table):
            return True
        if previous != target.runtime or self._has_lock_trigger(target.table):
            return True
        table = target.table
        return any(
            want != self._has_trigger(table, f"{table}_{suffix}")
            for suffix, want in self._wanted_triggers(target).items()
        )

    def backfill(self, target: ScoringTarget) -> int:
        """Rows without a prediction, in batches of ids (by the request table's key and the
        predictions' key), each batch in its own short transaction holding the request table as
        an insert does (a switch waits for it), scored by the version deployed then. A compiled
        batch is this version's SQL: when another deploy switched the table meanwhile, the batch
        stops (that deploy found the table deployed and left rows it had not scored: none, since
        every insert is scored by its own trigger)."""
        q = self.quote
        name = self._qualified(target.table)
        for table in (target.table, f"{target.table}_predictions"):  # adopted tables: an index on id
            ((indexed,),) = self.rows(
                statement("deploy", "has_id_index", self.dialect), {"table": self._qualified(table)}
            )
            if not indexed:
                index = q(f"{table[:56]}_id_idx")
                self.execute(self.render("deploy", "create_id_index", index=index, table=q(table)))
        ((low, high),) = self.rows(self.render("deploy", "id_range", table=q(target.table)))
        if low is None:
            return 0
        scored = 0
        for start in range(int(low), int(high) + 1, self.backfill_batch):
            batch = self.render(
                "deploy",
                "unscored_batch",
                table=q(target.table),
                predictions=q(f"{target.table}_predictions"),
                low=Quoted(str(int(start))),
                high=Quoted(str(int(start) + self.backfill_batch)),
            )
            unscored = relation(batch, self.dialect).as_("unscored")
            with self.transaction():
                self.execute(self.render("deploy", "lock_deployment_shared", table=Quoted(name)))
                if target.compiled is not None:
                    deployed = self.rows(
                        statement("deploy", "deployed_version", self.dialect), {"table_name": target.table}
                    )
                    if deployed != [(target.model.model, int(target.model.version), "sql")]:
                        return scored
                    self.execute(self._compiled_insert(target, unscored))
                else:
                    ((count,),) = self.rows(
                        self.render(
                            "scoring",
                            "backfill",
                            table_literal=self.literal(target.table),
                            # with its stored features joined, if any: the runtime runs it as it is
                            source=self.literal(target.source(self.dialect, unscored)),
                        )
                    )
                    scored += int(count or 0)
        return scored

    def _deployment_record(self, target: ScoringTarget) -> list[str]:
        """The deployment row's schema and content hash (its trigger functions check both before
        writing) and the grants its tables give indb's roles; run after the row is written."""
        schema = self.current_schema()
        content = target.model.content_hash
        values = {
            "schema": self.literal(schema),
            "table": self.literal(target.table),
            "content_hash": self.literal(content) if content else Quoted("NULL"),
        }
        result = [self.render("privileges", "record_deployment", **values)]
        if self.rows("SELECT to_regprocedure('indb.grant_deployment(text, text)')")[0][0] is not None:
            grant = self.render(
                "privileges", "grant_deployment", schema=values["schema"], table=values["table"]
            )
            result.append(grant)  # not on a managed server installed without a superuser
        return result

    def compiled_helpers(self, ref: ModelRef | None) -> tuple[str, str]:
        if ref is None:
            return ("pg_temp", f"indb_verify_{uuid.uuid4().hex[:12]}")
        digest = hashlib.sha256(ref.model.encode()).hexdigest()[:8]
        return ("indb", f"compiled_{ref.model[:24]}_{digest}_v{int(ref.version)}")

    def compiled_helper_sql(self, compiled, helpers: tuple[str, str] | None) -> list[str]:
        if helpers is None:
            return []
        sig = compiled.signature
        inputs = [f"{self.quote(i.name)} {_PG_TYPES[i.argument_type]}" for i in sig.inputs]
        result = []
        for helper in compiled.helper_functions(helpers):
            levels = [f"indb_l{j} double precision[]" for j in range(1, helper.levels + 1)]
            returns = "double precision[]"
            if helper.returns == "prediction":
                returns = _PG_TYPES[sig.prediction_type]
            result.append(
                self.render(
                    "scoring",
                    "create_compiled_helper",
                    name=self.quote(helpers[0], helper.name),
                    parameters=Quoted(", ".join(inputs + levels)),
                    return_type=Quoted(returns),
                    body=self.literal(f"BEGIN RETURN {helper.body}; END"),
                )
            )
        return result

    def _compiled_outputs(self, target: ScoringTarget, source: str | exp.Expression) -> exp.Select:
        """SELECT of id, prediction, p0.. and the recorded features over ``source`` (with its
        stored features joined), the probabilities computed once per row (OFFSET 0 keeps the
        planner from copying the array into every column). The model's shared values (a
        forest's sum) are columns of the rows, computed once for both outputs
        (:meth:`CompiledModel.outputs_columns`), not through the helper functions, which
        compute them once per output."""
        compiled = target.compiled
        width = len(target.probability_columns)
        relation = target.relation(self.dialect, source)
        rows, prediction, array = compiled.outputs_columns(self.dialect, relation)
        values = [exp.alias_(prediction, "indb_prediction")]
        if compiled.probabilities:
            values.append(exp.alias_(array, "indb_p"))
        inner = exp.select(exp.Star(), *values).from_(rows).offset(0)
        picks: list[exp.Expression] = [
            Pick(this=exp.column("indb_p"), index=i + 1) for i in range(len(compiled.probabilities))
        ]
        picks += [exp.null() for _ in range(max(0, width - len(picks)))]
        outputs = [exp.column("id"), exp.alias_(exp.column("indb_prediction"), "prediction")]
        outputs += [exp.alias_(p, f"p{i}") for i, p in enumerate(picks)]
        outputs += [exp.column(c, quoted=True) for c in target.recorded]
        return exp.select(*outputs).from_(inner.subquery("indb_scored"))

    def _compiled_insert(self, target: ScoringTarget, source: str | exp.Expression) -> str:
        """INSERT of the predictions of the rows of ``source``, one tree rendered once."""
        schema = self.current_schema()
        recorded = [exp.to_identifier(c, quoted=True) for c in target.recorded]
        probabilities = [exp.to_identifier(c, quoted=True) for c in target.probability_columns]
        columns = [
            exp.to_identifier(c)
            for c in ("id", "model", "model_version", "runtime", "role", "served", "prediction")
        ]
        # row mode: the served prediction is in the request row, shadow rows have a table
        home = f"{target.table}_shadow_predictions" if target.mode == "row" else f"{target.table}_predictions"
        predictions = exp.Table(
            this=exp.to_identifier(home, quoted=True),
            db=exp.to_identifier(schema, quoted=True),
        )
        values = [
            exp.column("id"),
            exp.Literal.string(target.model.model),
            exp.Literal.number(int(target.model.version)),
            exp.Literal.string("sql"),
            exp.Literal.string(target.role),
            exp.Boolean(this=target.served),
            exp.column("prediction"),
            *(exp.column(f"p{i}") for i in range(len(probabilities))),
            *(exp.column(c.copy()) for c in recorded),
        ]
        select = exp.select(*values).from_(self._compiled_outputs(target, source).subquery("indb_o"))
        into = exp.Schema(this=predictions, expressions=columns + probabilities + recorded)
        insert = exp.Insert(this=into, expression=select)
        return dialects.render(insert, self.dialect)

    def _compiled_check(self, target: ScoringTarget) -> str:
        """PL/pgSQL refusing to score with a version that is no longer deployed. Inserts take
        the request table's lock, which a switch's conflicts with, before this function is looked
        up, so the function is the one the last switch left; this is the guard that it stays so."""
        message = (
            f"IntegrityError: table {target.table} was switched to another version while this "
            "transaction was inserting into it; retry the transaction"
        )
        return self.render(
            "deploy",
            "check_compiled_version" if target.role == "champion" else "check_compiled_challenger",
            table_literal=self.literal(target.table),
            model_literal=self.literal(target.model.model),
            version=Quoted(str(int(target.model.version))),
            message=self.literal(message),
        )

    def _compiled_scoring_sql(self, target: ScoringTarget, previous: str | None) -> list[str]:
        """A PL/pgSQL trigger function per deployment holding the compiled model: no PL/Python.
        Switching versions replaces the function; the trigger is created once."""
        q = self.quote
        arms = [a for a in target.arms() if a.compiled is not None]
        body = [self._compiled_check(a) for a in arms] + [self._compiled_arm(a) for a in arms]
        result = []
        if previous not in (None, "sql"):
            result += self.unscoring_sql(target.table)
        return result + self.trigger_sql(
            f"{target.table}_score",
            q(target.table),
            body,
            function=q("indb", f"score_{target.table}"),
            row=target.mode == "row",
            definer=True,
            guard=(self.current_schema(), target.table),
            attach=previous != "sql",
        )

    def _compiled_arm(self, arm: ScoringTarget) -> str:
        """One arm's compiled scoring in its table's PL/pgSQL function. Bulk: an INSERT of the
        predictions of the rows it scores. Row: a served arm sets the row's prediction columns
        when the row's id is its (IF over the bucket of NEW.id); a shadow arm INSERTs into the
        shadow predictions table."""
        if arm.mode != "row":
            return self._compiled_insert(arm, "new_rows")
        if not arm.served:
            return self._compiled_insert(arm, "(SELECT NEW.*) AS r")
        picks = [f"p{i}" for i in range(len(arm.probability_columns))]
        fields = ["model", "model_version", "runtime", "role", "prediction", *arm.probability_columns]
        record = exp.to_identifier("NEW")  # PL/pgSQL's row: unquoted
        targets = [
            Quoted(exp.Column(this=exp.to_identifier(c, quoted=i > 4), table=record.copy()).sql(self.dialect))
            for i, c in enumerate(fields)
        ]
        values = [
            self.literal(arm.model.model),
            Quoted(str(int(arm.model.version))),
            self.literal("sql"),
            self.literal(arm.role),
        ]
        values += [Quoted(exp.column(c, "o").sql(self.dialect)) for c in ("prediction", *picks)]
        outputs = self._compiled_outputs(replace(arm, where=None), "(SELECT NEW.*) AS r")
        scoring = self.render(
            "scoring",
            "score_compiled_row",
            values=join(values),
            targets=join(targets),
            outputs=Quoted(dialects.render(outputs, self.dialect)),
        )
        if arm.where is None:
            return scoring
        condition = arm.where.transform(
            lambda node: exp.column("id", record.copy()) if isinstance(node, exp.Column) else node
        )
        return self.render(
            "scoring", "when_row", condition=Quoted(condition.sql(self.dialect)), statement=Quoted(scoring)
        )

    def compiled_model_sql(self, ref: ModelRef, compiled, *, default: bool) -> list[str]:
        sig = ref.signature
        helpers = self.compiled_helpers(ref)
        bodies = {"predict": (compiled.prediction_sql(self.dialect, helpers), _PG_TYPES[sig.prediction_type])}
        if sig.task == "classification":
            array = compiled.probabilities_array_sql(self.dialect, helpers)
            bodies["predict_proba"] = (array, "double precision[]")
        result = self.compiled_helper_sql(compiled, helpers)
        for kind, (body, returns) in bodies.items():
            for name in [f"{kind}_{ref.model}_v{ref.version}"] + ([f"{kind}_{ref.model}"] if default else []):
                result += self._function_sql(
                    ref, name, "create_compiled_function", returns, f"SELECT {body}", ", compiled SQL"
                )
        return result

    def unscoring_sql(self, table: str) -> list[str]:
        q = self.quote
        names = ("score", "score_arm_sql", "score_arm_onnx", "score_explain", "lock")
        return [self.drop_trigger_sql(f"{table}_{name}", q(table)) for name in names]

    # -- doctor -------------------------------------------------------------------------------
    def _roles_check(self) -> Check:
        installed = self.installed_roles()
        names = postgres_roles.comment_fragment(postgres_roles.DEFAULTS | (installed or self.role_names))
        names = names.removeprefix("roles ")
        try:
            self._settle_roles(installed)
        except errors.InvalidNameError as e:
            self.role_names = postgres_roles.DEFAULTS | installed  # the checks below: the real ones
            return Check("roles", False, names, str(e))
        where = (
            "recorded at install" if installed else "not installed yet: a superuser's connect creates them"
        )
        return Check("roles", True, f"{names} ({where})")

    def health(self) -> list[Check]:
        d = self.dialect
        server = self.query(statement("doctor", "server", d)).iloc[0]
        major = int(server.version_num) // 10000
        apt = f"apt-get install postgresql-{major}-plpython3"
        checks = [
            Check(
                "server",
                major >= 15,
                f"PostgreSQL {server.version} ({self.url})",
                "indb needs PostgreSQL 15 or later",
            ),
        ]
        extensions = dict(self.rows(statement("doctor", "extensions", d)))
        plpython = "plpython3u" in extensions
        checks.append(
            Check(
                "PL/Python",
                plpython and extensions["plpython3u"] is not None,
                "installed"
                if extensions.get("plpython3u")
                else ("available, not installed" if plpython else "missing"),
                (
                    f"{apt}; then as a superuser: CREATE EXTENSION plpython3u;"
                    if not plpython
                    else f"as a superuser in {server.database_name}: CREATE EXTENSION plpython3u;"
                ),
            )
        )
        if extensions.get("plpython3u"):
            try:
                with self.transaction():
                    ((versions,),) = self.rows("SELECT indb.runtime_versions()")
                checks.append(Check("server Python", True, versions))
            except psycopg.Error as e:
                checks.append(
                    Check(
                        "server Python",
                        False,
                        str(e).strip().splitlines()[0],
                        "install into the Python PL/Python uses (Debian: /usr/bin/python3): "
                        "/usr/bin/python3 -m pip install --break-system-packages numpy onnxruntime; "
                        "then connect once with indb as a superuser to install its runtime",
                    )
                )
            checks += server_python.health(self)  # indb's own Python there, for job actions
        # shared_preload_libraries is hidden from roles without pg_read_all_settings: an
        # installed pg_cron was preloaded (CREATE EXTENSION needs it).
        visible = isinstance(server.preload, str)
        cron = "pg_cron" in extensions
        preloaded = "pg_cron" in server.preload if visible else extensions.get("pg_cron") is not None
        if not cron:
            cron_fix = f"apt-get install postgresql-{major}-cron; then as below"
        elif not preloaded:
            cron_fix = (
                "postgresql.conf: shared_preload_libraries = 'pg_cron', cron.database_name = "
                f"'{server.database_name}'; restart the server; CREATE EXTENSION pg_cron;"
            )
        else:
            cron_fix = "as a superuser in the cron.database_name database: CREATE EXTENSION pg_cron;"
        checks.append(
            Check(
                "pg_cron",
                preloaded and extensions.get("pg_cron") is not None,
                ("installed" if extensions.get("pg_cron") else "available" if cron else "missing")
                + (", preloaded" if preloaded else ", not in shared_preload_libraries")
                + ("" if visible else " (shared_preload_libraries not visible to this user)"),
                cron_fix,
            )
        )
        if extensions.get("pg_cron") is not None:
            checks += self._job_checks(server.database_name)
        else:
            checks += self._jobs_without_cron(cron_fix)
        checks.append(self._roles_check())
        checks += self._time_index_checks()
        names = list(self.role_names.values())
        access = self.query(statement("doctor", "catalog_access", d), {"roles": names})
        if access.empty:
            checks.append(
                Check(
                    "privileges",
                    bool(server.can_create_schema),
                    f"user {server.user_name}: no catalog yet; "
                    + ("may create it" if server.can_create_schema else "may not create schema indb"),
                    f"GRANT CREATE ON DATABASE {server.database_name} TO {server.user_name};",
                )
            )
        else:
            row = access.iloc[0]
            ok = bool(row.usage and row.read_models)
            checks.append(
                Check(
                    "privileges",
                    ok,
                    f"user {server.user_name}{' (superuser)' if server.superuser else ''}"
                    f"{' in ' + row.roles if row.roles else ''}: "
                    f"catalog {'readable' if ok else 'not readable'}, "
                    f"{'may' if row.register_models else 'may not'} register models",
                    f"as a superuser: GRANT {self._role('reader')} TO {self.quote(server.user_name).text}; "
                    f"(or {self._role('developer')}, {self._role('admin')}: see the README's "
                    "Security section)",
                )
            )
        return checks

    def _time_index_checks(self) -> list[Check]:
        """Tables deployed before indb indexed their times: monitor runs read their history."""
        from indb import deployments

        try:
            with self.transaction():
                missing = self.rows(statement("doctor", "missing_time_indexes", self.dialect))
        except psycopg.Error:  # no catalog yet, or not readable: other checks say so
            return []
        if not missing:
            return [Check("time indexes", True, "every deployment's tables are indexed by time")]
        tables = sorted({table for table, *_ in missing})
        fix = "; ".join(
            deployments.time_index(self, table, mode, suffix, schema=schema, concurrently=True)
            for table, schema, mode, suffix in missing
        )
        detail = (
            f"deployment(s) {', '.join(tables)} have no index on scored_at / observed_at: every "
            "monitor run reads their whole history"
        )
        return [Check("time indexes", False, detail, fix + ";")]

    def _jobs_without_cron(self, cron_fix: str) -> list[Check]:
        """Scheduled jobs in a database without pg_cron run only when called."""
        try:
            with self.transaction():
                ((count,),) = self.rows(statement("doctor", "scheduled_jobs", self.dialect))
        except psycopg.Error:
            return []  # no catalog, or not readable: the privileges check says so
        if not count:
            return []
        detail = f"{count} job(s) have a schedule, but without pg_cron they run only when called"
        return [Check("jobs", False, detail, cron_fix + " then SELECT indb.enable_job('<job>'); for each")]

    def _job_checks(self, database: str) -> list[Check]:
        """pg_cron runs in this database, and each scheduled indb job has its active cron entry."""
        d = self.dialect
        ((cron_database,),) = self.rows(statement("doctor", "cron_database", d))
        checks = [
            Check(
                "pg_cron database",
                cron_database == database,
                f"cron.database_name = {cron_database!r}",
                f"postgresql.conf: cron.database_name = '{database}'; restart the server "
                "(pg_cron runs jobs of one database only)",
            )
        ]
        try:
            with self.transaction():
                entries = self.rows(statement("doctor", "job_cron_entries", d))
                ((tick_needed, tick),) = self.rows(statement("doctor", "job_tick", d))
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0]
            return [
                *checks,
                Check("jobs", False, first, "run indb doctor as a superuser to check pg_cron's jobs"),
            ]
        for name, enabled, cron_id, present, active, same_database in entries:
            literal = self.literal(name).text
            if not present:
                ok, detail = False, "no pg_cron entry" + (f" (cron job {cron_id} is gone)" if cron_id else "")
                fix = f"SELECT indb.enable_job({literal}); (creates its pg_cron entry)"
            elif not same_database:
                ok, detail = False, "its pg_cron entry runs in another database"
                fix = f"SELECT indb.unschedule({literal}); then indb.schedule it again in {database}"
            elif bool(active) != bool(enabled):
                ok = False
                state = "enabled" if enabled else "disabled"
                detail = f"{state} but its pg_cron entry is {'active' if active else 'inactive'}"
                fix = f"SELECT indb.enable_job({literal}, {'true' if enabled else 'false'});"
            else:
                ok, detail, fix = True, f"pg_cron job {cron_id}, {'active' if active else 'paused'}", None
            checks.append(Check(f"job {name}", ok, detail, fix))
        if tick_needed:
            checks.append(
                Check(
                    "jobs tick",
                    bool(tick),
                    "indb.tick " + ("active" if tick else "missing or inactive"),
                    "SELECT cron.schedule('indb.tick', '* * * * *', 'CALL indb.run_due_jobs()'); "
                    "(timeouts and on_alert jobs need it)",
                )
            )
        return checks

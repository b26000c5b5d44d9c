"""Compiled migrations: SQL recorded on one tenant, replayed on the next ones (PostgreSQL).

The schema editor's statements for a migration (or a whole build) are the
same for every tenant of one database alias, since they run with the
tenant's schema first on a transaction-local ``search_path``. The first
tenant records them; the next ones get them as one batch, one round trip,
instead of rendering model states and running the schema editor again. The
cache is keyed by everything that changes the SQL: the alias (off the shared
database, foreign keys to shared tables are not constraints) and the
migrations applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.db.backends.base.base import BaseDatabaseWrapper

from tenancy._migrating.plan import Key, Statements
from tenancy._primitives import citus
from tenancy.exceptions import TenantMigrationError

if TYPE_CHECKING:
    from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations


def batched(connection: BaseDatabaseWrapper, statements: Statements) -> Statements:
    """Return recorded statements as one statement to replay in one round trip.

    A schema's 83 statements sent one by one cost 83 round trips to the
    server; PostgreSQL runs a batch of them, separated by semicolons, from a
    single query message, in order, inside the caller's transaction. Each
    statement's parameters are merged into its text first, as Django's
    PostgreSQL schema editor does before executing it.

    Citus refuses such a batch ("cannot insert multiple commands into a
    prepared statement": it forwards a ``CREATE INDEX`` or ``ALTER TABLE`` to
    the worker with the query string it got), so there the statements stay
    one per query. Wrapping them in a ``DO`` block would be one round trip,
    but Citus does not distribute tables created from PL/pgSQL: they would
    stay local tables on the coordinator, inside a distributed schema.
    """
    if connection.vendor != "postgresql" or len(statements) < 2:
        return statements
    if citus.is_citus(connection.alias):
        return statements
    ops = cast("PostgresOperations", connection.ops)
    texts = [sql if params is None else ops.compose_sql(sql, params) for sql, params in statements]
    return [(";\n".join(texts), None)]


def run(connection: BaseDatabaseWrapper, statements: Statements) -> None:
    """Execute recorded statements in the current transaction."""
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params or None)


def replay_migrations(
    connection: BaseDatabaseWrapper, schema: str, compiled: list[tuple[Key, Statements]]
) -> None:
    """Run the SQL recorded for each migration; raise naming the one that failed."""
    for key, statements in compiled:
        try:
            run(connection, statements)
        except Exception as exc:
            raise TenantMigrationError(schema, key, exc) from exc


def compile_recording(
    connection: BaseDatabaseWrapper, recording: list[tuple[Key, Statements]]
) -> list[tuple[Key, Statements]]:
    """Return a recording ready to replay: one batch per migration."""
    return [(key, batched(connection, statements)) for key, statements in recording]

"""Where a tenant's tables live: a schema (PostgreSQL) or a table prefix (others).

Per-tenant model classes carry their storage in ``db_table`` itself, so no
connection state (``search_path``) is ever switched: a query on PostgreSQL
reads ``"tenant_acme"."app_project"``; on SQLite ``"tenant_acme__app_project"``.
"""

from __future__ import annotations

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

#: Separator between the tenant prefix and the table name on prefix backends.
#: Schema names never contain a doubled underscore, so prefixes cannot overlap.
PREFIX_SEPARATOR = "__"


def uses_schemas(connection: BaseDatabaseWrapper) -> bool:
    """Return whether tenants get real schemas on this connection (PostgreSQL)."""
    return connection.vendor == "postgresql"


def table_name(schema: str, table: str, using: str) -> str:
    """Return the ``db_table`` of ``table`` for the tenant stored under ``schema``."""
    if uses_schemas(connections[using]):
        # Django's quote_name() leaves an already quoted name alone, so the
        # schema-qualified name survives every query and DDL statement.
        return f'"{schema}"."{table}"'
    return f"{schema}{PREFIX_SEPARATOR}{table}"


def unqualified(table: str) -> str:
    """Return the bare table name of a schema-qualified ``db_table``."""
    if table.startswith('"') and '"."' in table:
        return table.split('"."', 1)[1].rstrip('"')
    return table


def schema_exists(schema: str, using: str) -> bool:
    """Return whether the tenant's schema (or any prefixed table) exists."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if uses_schemas(connection):
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
            return cursor.fetchone() is not None
    return bool(prefixed_tables(schema, using))


def prefixed_tables(schema: str, using: str) -> list[str]:
    """Return the existing tables of a tenant on a prefix backend."""
    connection = connections[using]
    start = schema + PREFIX_SEPARATOR
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    return [name for name in names if name.startswith(start)]


def existing_tenant_tables(schema: str, using: str) -> set[str]:
    """Return the ``db_table`` values of the tenant's tables that exist now."""
    connection = connections[using]
    if not uses_schemas(connection):
        return set(prefixed_tables(schema, using))
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {table_name(schema, row[0], using) for row in cursor.fetchall()}


def uses_schemas_alias(using: str) -> bool:
    """Return whether tenants get real schemas on the database ``using``."""
    return uses_schemas(connections[using])


def schema_oid(schema: str, using: str) -> int | None:
    """Return PostgreSQL's oid of the schema (its identity), or None."""
    connection = connections[using]
    if not uses_schemas(connection):
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [schema])
        row = cursor.fetchone()
    return int(row[0]) if row else None

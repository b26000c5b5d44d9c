"""Each tenant's record of its applied migrations, in its own storage.

Like Django's ``MigrationRecorder``, but one table per tenant
(``tenancy_migrations`` in the tenant's schema, or prefixed), written in the
transaction that applies the migration, so the record and the schema never
disagree.
"""

from __future__ import annotations

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from tenancy._migrating.plan import Key, plan
from tenancy._primitives import storage

#: The per-tenant record of applied migrations (one per schema / prefix).
RECORD_TABLE = "tenancy_migrations"


def applied(schema: str, using: str) -> set[Key]:
    """Return the migrations recorded as applied in the tenant's storage."""
    table = storage.table_name(schema, RECORD_TABLE, using)
    connection = connections[using]
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            # An index look-up; pg_tables would scan the catalog of every tenant.
            cursor.execute("SELECT to_regclass(%s)", [table])
            if cursor.fetchone()[0] is None:
                return set()
        elif table not in storage.existing_tenant_tables(schema, using):
            return set()
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(table)}")
        return {(app, name) for app, name in cursor.fetchall()}


def pending(schema: str, using: str) -> list[Key]:
    """Return the migrations the tenant has not applied yet, in order."""
    done = applied(schema, using)
    return [key for key in plan().keys if key not in done]


def record(connection: BaseDatabaseWrapper, schema: str, keys: list[Key]) -> None:
    """Record ``keys`` as applied (creating the record table if needed)."""
    table = connection.ops.quote_name(storage.table_name(schema, RECORD_TABLE, connection.alias))
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (app varchar(255) NOT NULL, "
            "name varchar(255) NOT NULL, PRIMARY KEY (app, name))"
        )
        if keys:
            cursor.executemany(
                f"INSERT INTO {table} (app, name) VALUES (%s, %s)", [list(k) for k in keys]
            )

"""Synchronous primitives that build and drop a tenant's storage.

They know nothing of Celery, take a schema and a database alias, and are
idempotent: provisioning an existing schema and dropping a missing one are
no-ops that say so. On PostgreSQL the schema and all its tables are created
in one transaction (transactional DDL), so a crash leaves nothing half-built.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, connections, transaction

from tenancy import cache, conf, factory, migrator, storage
from tenancy.ddl import ddl_transaction, tenant_schema_editor
from tenancy.registry import TEMPLATES

logger = logging.getLogger("tenancy.provisioning")


def provision(schema: str, using: str, *, authorize_role: bool = True) -> bool:
    """Create the schema (or prefixed tables) and every tenant table, in one transaction.

    Tables of apps with migrations are built from the current migration state
    (not by replaying history) and the tenant is recorded as fully migrated;
    tables of apps without migrations are built from the models. Returns
    False, doing nothing, if the tenant's storage already exists.
    """
    connection = connections[using]
    schemas = storage.uses_schemas(connection)
    with ddl_transaction(using), connection.cursor() as cursor:
        if schemas:
            # Two provisioners of one schema queue here instead of racing.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["tenancy:" + schema])
            if storage.schema_exists(schema, using):
                return False
            cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(schema)}")
        elif storage.prefixed_tables(schema, using):
            return False
        migrated = migrator.migrated_apps()
        if migrated:
            migrator.build_schema(schema, using)
        else:
            migrator.create_record_table(connection, schema, using)
        # Only build the tenant's classes when some templates have no migrations.
        unmigrated = (
            [m for m in _models(schema, using).tables() if m._meta.app_label not in migrated]
            if any(t._meta.app_label not in migrated for t in TEMPLATES.values())
            else []
        )
        if unmigrated:
            prefix = None if schemas else schema
            with tenant_schema_editor(connection, atomic=False, prefix=prefix) as editor:
                for model in unmigrated:
                    editor.create_model(model)
        if schemas and authorize_role and conf.schema_authorization():
            authorize(schema, using)
    return True


def authorize(schema: str, using: str) -> None:
    """Give the schema its own role, with rights on its tables only (PostgreSQL).

    A session that does ``SET ROLE <schema>`` can then read and write this
    tenant's tables and no other tenant's: schemas grant no access to others.
    """
    connection = connections[using]
    role = connection.ops.quote_name(schema)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [schema])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE ROLE {role} NOLOGIN")
            cursor.execute(f"GRANT {role} TO CURRENT_USER")
        cursor.execute(f"ALTER SCHEMA {role} OWNER TO {role}")
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {role} TO {role}")
        cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {role} TO {role}")


def drop(schema: str, using: str) -> bool:
    """Drop the tenant's schema (or prefixed tables) and all the data in it.

    Returns False if there was nothing to drop.
    """
    cache.evict(schema)
    connection = connections[using]
    if storage.uses_schemas(connection):
        if not storage.schema_exists(schema, using):
            return False
        _drop_tables_in_batches(schema, using)
        with transaction.atomic(using=using), connection.cursor() as cursor:
            _give_way(cursor)
            cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema)} CASCADE")
            if conf.schema_authorization():
                _drop_role(cursor, schema)
        return True
    tables = storage.prefixed_tables(schema, using)
    if not tables:
        return False
    with tenant_schema_editor(connection) as editor:
        for table in tables:
            editor.execute(f"DROP TABLE {connection.ops.quote_name(table)}")
    return True


def _drop_tables_in_batches(schema: str, using: str) -> None:
    """Drop a big schema's tables a batch per transaction before the schema itself.

    ``DROP SCHEMA ... CASCADE`` locks every table, index and sequence in one
    transaction; hundreds of tables can exhaust ``max_locks_per_transaction``
    and hold other tenants' work. Interrupted, the next drop goes on.
    """
    connection = connections[using]
    batch = max(1, conf.drop_batch())
    quote = connection.ops.quote_name
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename LIMIT %s",
                [schema, batch + 1],
            )
            tables = [row[0] for row in cursor.fetchall()]
        if len(tables) <= batch:
            return  # small enough for the schema drop itself
        with transaction.atomic(using=using), connection.cursor() as cursor:
            _give_way(cursor)
            names = ", ".join(f"{quote(schema)}.{quote(t)}" for t in tables[:batch])
            cursor.execute(f"DROP TABLE IF EXISTS {names} CASCADE")


def _give_way(cursor: Any) -> None:
    """Fail fast instead of queueing for a lock: dropping a tenant table locks the
    shared tables its foreign keys point at, and a drop waiting for them would
    make every other tenant's writes to those tables wait behind it. The drop
    task retries (lock timeouts are transient)."""
    cursor.execute("SET LOCAL lock_timeout = %s", [f"{DROP_LOCK_TIMEOUT_MS}ms"])


#: How long a drop waits for a lock before giving way (milliseconds).
DROP_LOCK_TIMEOUT_MS = 2000


def _drop_role(cursor: Any, schema: str) -> None:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [schema])
    if cursor.fetchone() is not None:
        # Another database of the cluster may still use the role: keep it then.
        cursor.execute("SAVEPOINT tenancy_role")
        try:
            cursor.execute(f'DROP ROLE "{schema}"')
        except DatabaseError:
            cursor.execute("ROLLBACK TO SAVEPOINT tenancy_role")


def _models(schema: str, using: str) -> factory.TenantModels:
    cached = cache.cached(schema)
    if cached is not None and cached.database == using:
        return cached
    return factory.build(schema, using)

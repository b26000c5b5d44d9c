"""Synchronous primitives that build and drop a tenant's storage.

They know nothing of Celery, take a schema and a database alias, and are
idempotent: provisioning an existing schema and dropping a missing one are
no-ops that say so. On PostgreSQL the schema and all its tables are created
in one transaction (transactional DDL), so a crash leaves nothing half-built.
"""

from __future__ import annotations

import logging

from django.db import connections, transaction

from tenancy import cache, factory, storage
from tenancy.ddl import tenant_schema_editor

logger = logging.getLogger("tenancy.provisioning")


def provision(schema: str, using: str) -> bool:
    """Create the schema (or prefixed tables) and every tenant table.

    Returns False, doing nothing, if the tenant's storage already exists.
    """
    connection = connections[using]
    models = _models(schema, using)
    if storage.uses_schemas(connection):
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Two provisioners of one schema queue here instead of racing.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["tenancy:" + schema])
            if storage.schema_exists(schema, using):
                return False
            cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(schema)}")
            with tenant_schema_editor(connection, atomic=False) as editor:
                for model in models.tables():
                    editor.create_model(model)
        return True
    if storage.prefixed_tables(schema, using):
        return False
    # SQLite's schema editor opens its own transaction (DDL is transactional there too).
    with tenant_schema_editor(connection) as editor:
        for model in models.tables():
            editor.create_model(model)
    return True


def drop(schema: str, using: str) -> bool:
    """Drop the tenant's schema (or prefixed tables) and all the data in it.

    Returns False if there was nothing to drop.
    """
    cache.evict(schema)
    connection = connections[using]
    if storage.uses_schemas(connection):
        with transaction.atomic(using=using), connection.cursor() as cursor:
            if not storage.schema_exists(schema, using):
                return False
            cursor.execute(f"DROP SCHEMA {connection.ops.quote_name(schema)} CASCADE")
        return True
    tables = storage.prefixed_tables(schema, using)
    if not tables:
        return False
    with tenant_schema_editor(connection) as editor:
        for table in tables:
            editor.execute(f"DROP TABLE {connection.ops.quote_name(table)}")
    return True


def _models(schema: str, using: str) -> factory.TenantModels:
    cached = cache.cached(schema)
    if cached is not None and cached.database == using:
        return cached
    return factory.build(schema, using)

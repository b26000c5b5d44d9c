"""Synchronous primitives that build and drop a tenant's storage.

They know nothing of Celery, take a schema and a database alias, and are
idempotent: provisioning an existing schema and dropping a missing one are
no-ops that say so. On PostgreSQL the schema and all its tables are created
in one transaction (transactional DDL), so a crash leaves nothing half-built.
"""

from __future__ import annotations

import logging

from django.db import connections, transaction

from tenancy import cache, factory, migrator, storage
from tenancy.ddl import ddl_transaction, tenant_schema_editor

logger = logging.getLogger("tenancy.provisioning")


def provision(schema: str, using: str) -> bool:
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
        unmigrated = [
            model
            for model in _models(schema, using).tables()
            if model._meta.app_label not in migrated
        ]
        if unmigrated:
            prefix = None if schemas else schema
            with tenant_schema_editor(connection, atomic=False, prefix=prefix) as editor:
                for model in unmigrated:
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

"""The warm pool: schemas provisioned ahead of time, claimed by a rename.

Building a schema costs tens of milliseconds of DDL; renaming one costs a
catalog update. With ``TENANCY_POOL_SIZE`` set, :func:`refill` keeps that
many schemas per database built at the current migration state, and
provisioning claims one with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
``ALTER SCHEMA ... RENAME`` in the transaction that marks the tenant ready.
A pooled schema built at an older migration state is never handed out:
:func:`refill` drops it and builds a current one.
"""

from __future__ import annotations

import logging
import uuid

from django.db import connections, transaction

from tenancy import conf, locks, migrator, provisioning, storage
from tenancy.ddl import ddl_transaction
from tenancy.models import PoolSchema

logger = logging.getLogger("tenancy.pool")

#: Pool schemas are named with this prefix, which tenant keys can never produce.
PREFIX = "tenancy_pool_"


def enabled(database: str) -> bool:
    """Return whether provisioning on ``database`` uses the pool."""
    return conf.pool_size() > 0 and storage.uses_schemas_alias(database)


def claim(schema: str, database: str) -> bool:
    """Rename a current pooled schema to ``schema``, in the caller's transaction.

    Returns False (and does nothing) when no current pooled schema is free.
    """
    if not enabled(database) or storage.schema_exists(schema, database):
        return False
    connection = connections[database]
    shared = _shared()
    with transaction.atomic(using=shared):
        pooled = (
            PoolSchema.objects.using(shared)
            .select_for_update(skip_locked=True)
            .filter(database=database, digest=migrator.plan().digest)
            .first()
        )
        if pooled is None:
            return False
        pooled.delete()
        if not storage.schema_exists(pooled.name, database):
            return False  # a row left by an interrupted claim: forget it
        with transaction.atomic(using=database), connection.cursor() as cursor:
            quote = connection.ops.quote_name
            cursor.execute(f"ALTER SCHEMA {quote(pooled.name)} RENAME TO {quote(schema)}")
        if conf.schema_authorization():
            provisioning.authorize(schema, database)
    return True


def refill(database: str, size: int | None = None) -> int:
    """Drop stale pooled schemas and build current ones up to ``size``; return how many built."""
    if not storage.uses_schemas_alias(database):
        return 0
    size = conf.pool_size() if size is None else size
    with locks.tenant_lock(PREFIX + database, _shared()) as acquired:
        if not acquired:
            return 0  # another refill is running
        digest = migrator.plan().digest
        shared = _shared()
        pooled = PoolSchema.objects.using(shared).filter(database=database)
        for stale in pooled.exclude(digest=digest):
            _discard(stale)
        missing = size - pooled.filter(digest=digest).count()
        built = 0
        for _ in range(max(0, missing)):
            name = PREFIX + uuid.uuid4().hex[:16]
            with ddl_transaction(database):
                # The role is made when the schema is claimed and gets its tenant's name.
                provisioning.provision(name, database, authorize_role=False)
                PoolSchema.objects.using(shared).create(name=name, database=database, digest=digest)
            built += 1
    if built:
        logger.info("built %d pooled schema(s) on %s", built, database)
    return built


def drain(database: str) -> int:
    """Drop every pooled schema of ``database``; return how many."""
    rows = list(PoolSchema.objects.using(_shared()).filter(database=database))
    for row in rows:
        _discard(row)
    return len(rows)


def _discard(row: PoolSchema) -> None:
    provisioning.drop(row.name, row.database)
    row.delete()


def _shared() -> str:
    from tenancy.lifecycle import shared_database

    return shared_database()

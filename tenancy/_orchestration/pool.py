"""The warm pool: schemas provisioned ahead of time, claimed by a rename.

Building a schema costs tens of milliseconds of DDL; renaming one costs a
catalog update. With ``TENANCY_POOL_SIZE`` set, :func:`refill` keeps that
many schemas per database built at the current migration state, each marked
as owned by its pool entry, and provisioning claims one with ``SELECT ... FOR
UPDATE SKIP LOCKED``, then renames it and marks it as the tenant's in the
transaction that marks the tenant ready. A pooled schema built at an older
migration state is never handed out: :func:`refill` drops it and builds a
current one. Nothing in the pool is ever renamed or dropped without carrying
its own entry's mark.
"""

from __future__ import annotations

import logging
import secrets

from django.db import transaction

from tenancy._migrating.plan import plan
from tenancy._orchestration import building
from tenancy._primitives import conf, locks, ownership, provisioning, shared, storage
from tenancy._primitives.ddl import ddl_transaction
from tenancy._primitives.records import PoolSchema

logger = logging.getLogger("tenancy.pool")

#: Pool schemas are named with this prefix, which tenant keys can never produce.
PREFIX = "tenancy_pool_"


def enabled(database: str) -> bool:
    """Return whether provisioning on ``database`` uses the pool."""
    return conf.pool_size() > 0 and storage.uses_schemas_alias(database)


def claim(schema: str, database: str, owner: str) -> bool:
    """Rename a current pooled schema to ``schema`` and give it to ``owner``.

    The pool entry is taken in the caller's transaction on the shared database,
    the rename in the caller's transaction on ``database`` (one and the same
    where they are one database: then the claim, the rename and the tenant's
    ready state commit together). Returns False, doing nothing, when no current
    pooled schema is free.
    """
    if not enabled(database):
        return False
    alias = shared.database()
    with transaction.atomic(using=alias):
        for pooled in (
            PoolSchema.objects.using(alias)
            .select_for_update(skip_locked=True)
            .filter(database=database, digest=plan().digest)
            .exclude(token="")[:3]
        ):
            pooled.delete()
            if provisioning.rename_schema(
                pooled.name, schema, database, ownership.pool_owner(pooled.token), owner
            ):
                if conf.schema_authorization():
                    provisioning.authorize(schema, database, owner)
                return True
            # A row left by an interrupted claim, or a schema that is not the entry's.
            logger.warning("pooled schema %s is gone or not the pool's; forgot it", pooled.name)
    return False


def refill(database: str, size: int | None = None) -> int:
    """Drop stale pooled schemas and build current ones up to ``size``; return how many built."""
    if not storage.uses_schemas_alias(database):
        return 0
    size = conf.pool_size() if size is None else size
    alias = shared.database()
    with locks.hold(f"pool:{database}", alias) as held:
        if held is None:
            return 0  # another refill is running
        digest = plan().digest
        pooled = PoolSchema.objects.using(alias).filter(database=database)
        for stale in pooled.exclude(digest=digest):
            _discard(stale)
        missing = size - pooled.filter(digest=digest).count()
        built = 0
        for _ in range(max(0, missing)):
            token = secrets.token_hex(16)
            name = PREFIX + token[:16]
            with ddl_transaction(database):
                # The role is made when the schema is claimed and gets its tenant's name.
                building.build(name, database, ownership.pool_owner(token), authorize=False)
                PoolSchema.objects.using(alias).create(
                    name=name, database=database, digest=digest, token=token
                )
            built += 1
    if built:
        logger.info("built %d pooled schema(s) on %s", built, database)
    return built


def drain(database: str) -> int:
    """Drop every pooled schema of ``database``; return how many."""
    rows = list(PoolSchema.objects.using(shared.database()).filter(database=database))
    for row in rows:
        _discard(row)
    return len(rows)


def _discard(row: PoolSchema) -> None:
    if row.token:
        provisioning.drop_schema(row.name, row.database, ownership.pool_owner(row.token))
    row.delete()

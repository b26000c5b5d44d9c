"""Provision one tenant: name it if it was never named, build its storage, mark it ready.

What the provisioning task runs; a test, a shell or a command can call it
directly. Safe to run twice or concurrently: the tenant incarnation's lock
serialises the work, every state change is a compare-and-set, and on
PostgreSQL the schema, its tables and the ``ready`` state commit in one
transaction where the schema and the row share a database. On another
database the schema commits first, marked as the tenant's: a retry after a
crash in between finds it, sees that it is the tenant's own, and finishes.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.db import transaction

from tenancy._migrating import executor
from tenancy._migrating.plan import Plan, plan
from tenancy._orchestration import building, pool
from tenancy._orchestration.transitions import (
    about,
    advance,
    describe,
    is_transient,
    load,
    logger,
    record_failure,
    send_robust,
)
from tenancy._primitives import allocation, conf, jobs, locks, ownership, provisioning, shared
from tenancy._primitives.ddl import ddl_transaction
from tenancy._primitives.states import (
    FAILED,
    PENDING,
    PROVISIONING,
    READY,
    Result,
    lock_key,
)
from tenancy.exceptions import InvalidTenantKey
from tenancy.signals import provisioning_failed, tenant_provisioned


def provision_tenant(pk: Any, *, final: bool = True) -> Result:
    """Provision the tenant ``pk`` and mark it ready; return what happened.

    Returns ``READY``, ``MISSING`` (deleted before its turn), ``FAILED`` (the
    key names no schema, or a schema or role that is not the tenant's has its
    name: the error is on the row) or ``BUSY`` (another process holds the
    tenant). On an error the tenant is marked ``failed`` with the error when
    ``final`` is true or the error is not transient (else it stays to be
    retried), and the error is raised.
    """
    model = shared.tenant_model()
    tenant = load(model, pk)
    if tenant is None:
        return Result.MISSING
    if tenant.state == READY:
        return Result.READY
    if (not tenant.db_schema or not tenant.incarnation) and not name_or_fail(tenant):
        return Result.FAILED
    with (
        about(tenant),
        locks.hold(lock_key(tenant.incarnation), shared.database(), wait=conf.lock_wait()) as held,
    ):
        if held is None:
            logger.info("another process holds this tenant; leaving it to it")
            return Result.BUSY
        return provision_held(model, pk, held, final=final)


def name_or_fail(tenant: Any) -> bool:
    """Name a row that was written without ``save()``; mark it failed if its key can't be."""
    try:
        allocation.name_stored(tenant)
    except InvalidTenantKey as exc:
        advance(tenant, FAILED, describe(exc), expect=(PENDING,))
        logger.error("tenant %r cannot be provisioned: %s", tenant.pk, describe(exc))
        send_robust(provisioning_failed, sender=type(tenant), tenant=tenant, error=describe(exc))
        return False
    return True


def provision_held(model: Any, pk: Any, held: locks.Held, *, final: bool) -> Result:
    """Provision the tenant ``pk`` while holding its lock (``held``)."""
    tenant = load(model, pk)
    if tenant is None:
        return Result.MISSING
    if tenant.state == READY:
        return Result.READY
    if tenant.state == FAILED:
        return Result.FAILED  # failed for good: only a retry (back to pending) builds it again
    owner = ownership.tenant_owner(tenant.incarnation)
    started = time.monotonic()
    try:
        # A pooled schema is handed out in one short transaction: no
        # "provisioning" state is worth writing for that.
        committed = _claim_pooled(tenant, owner, held)
        if committed is None:
            advance(tenant, PROVISIONING, tenant.last_error, expect=(PENDING, PROVISIONING))
            committed = _build(tenant, owner, held)
    except Exception as exc:
        final = final or not is_transient(exc)
        if record_failure(tenant, exc, final=final, migrating=False) and final:
            send_robust(provisioning_failed, sender=model, tenant=tenant, error=describe(exc))
        raise
    if not committed:
        logger.info("deleted while being provisioned; nothing kept")
        return Result.MISSING
    logger.info("provisioned in %.1f ms", (time.monotonic() - started) * 1000)
    if pool.enabled(tenant.database):
        jobs.send(jobs.REFILL_POOL, tenant.database, database=tenant.database)
    send_robust(tenant_provisioned, sender=model, tenant=tenant)
    return Result.READY


def _claim_pooled(tenant: Any, owner: str, held: locks.Held) -> bool | None:
    """Hand out a pooled schema; return None when none is free (or the pool is off).

    Where the schema and the row share a database, the claim, the rename and the
    ready state commit in one transaction. On another database the rename commits
    there first, marked as the tenant's: a crash before the row commits leaves the
    tenant's own schema, which the retry finds and finishes, as after a build.
    """
    if not pool.enabled(tenant.database) or ownership.owns_schema(
        tenant.db_schema, tenant.database, owner
    ):
        return None  # no pool, or the tenant's own schema stands: the build path finishes
    alias = shared.database()
    same = tenant.database == alias
    with ddl_transaction(alias):
        with ddl_transaction(tenant.database) if not same else contextlib.nullcontext():
            if not pool.claim(tenant.db_schema, tenant.database, owner):
                return None
        held.ensure()
        if advance(tenant, READY, **current_fields()):
            return True
        transaction.set_rollback(True, using=alias)
    if not same:
        provisioning.drop_schema(tenant.db_schema, tenant.database, owner)
    return False


def _build(tenant: Any, owner: str, held: locks.Held) -> bool:
    """Build the storage and mark the tenant ready; return whether the row still exists."""
    alias = shared.database()
    same = tenant.database == alias
    # One transaction where the schema and the row share a database: the
    # schema exists if and only if the tenant is ready.
    with ddl_transaction(alias) if same else contextlib.nullcontext():
        if not building.build(tenant.db_schema, tenant.database, owner):
            # The tenant's own storage stands: an interrupted build on another
            # database, or a retried migration. Bring it to the current state.
            executor.migrate_schema(tenant.db_schema, tenant.database)
        held.ensure()
        if advance(tenant, READY, **current_fields()):
            return True
        if same:
            transaction.set_rollback(True, using=alias)  # commit no orphan schema
    if not same:
        provisioning.drop_schema(tenant.db_schema, tenant.database, owner)
    return False


def current_fields(the_plan: Plan | None = None) -> dict[str, Any]:
    """Return the row fields of a tenant at the current migrations."""
    the_plan = plan() if the_plan is None else the_plan
    return {"migrations_digest": the_plan.digest, "migrations_applied": len(the_plan.keys)}


def retry(tenant: Any) -> None:
    """Put a failed (or stuck) tenant back to ``pending`` and send its provisioning after commit."""
    alias = shared.database()
    with transaction.atomic(using=alias):
        advance(tenant, PENDING, tenant.last_error, expect=(FAILED, PENDING, PROVISIONING))
        jobs.send_after_commit(jobs.PROVISION, tenant.pk, using=alias, database=tenant.database)

"""Bring one tenant (or a batch) to the current tenant migrations.

What the migrate tasks run. A tenant at the current plan costs one row read;
a failing migration leaves the tenant's schema exactly as it was (one
transaction) and keeps the error on the row; a tenant never built is left to
provisioning, which builds the current state.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.db import transaction

from tenancy._migrating import executor
from tenancy._migrating.plan import Plan, plan
from tenancy._orchestration.provision import current_fields, provision_held
from tenancy._orchestration.transitions import (
    about,
    advance,
    describe,
    is_transient,
    load,
    logger,
    record_failure,
)
from tenancy._primitives import conf, jobs, locks, ownership, shared
from tenancy._primitives.ddl import ddl_transaction
from tenancy._primitives.records import RolloutRefusal
from tenancy._primitives.states import (
    FAILED,
    PENDING,
    READY,
    UNBUILT,
    Result,
    is_current,
    lock_key,
)
from tenancy.exceptions import ForeignObject, StorageMissing


def migrate_tenant(pk: Any, *, final: bool = True) -> Result:
    """Bring tenant ``pk``'s schema to the current migrations; return what happened.

    Returns ``MIGRATED``, ``CURRENT`` (nothing to do: one row read, no
    migration graph), ``SKIPPED`` (not provisioned yet: provisioning builds
    the current state), ``MISSING`` or ``BUSY``. A failure marks the tenant
    ``failed`` with the migration and the error (nothing of the failed
    migration stays applied) and is raised.
    """
    model = shared.tenant_model()
    tenant = load(model, pk)
    if tenant is None:
        return Result.MISSING
    if tenant.state in UNBUILT or not tenant.incarnation:
        return Result.SKIPPED
    the_plan = plan()
    if is_current(tenant.state, tenant.migrations_digest, the_plan.digest):
        return Result.CURRENT
    with (
        about(tenant),
        locks.hold(lock_key(tenant.incarnation), shared.database(), wait=conf.lock_wait()) as held,
    ):
        if held is None:
            return Result.BUSY
        return _migrate_held(model, pk, held, the_plan, final=final)


def _migrate_held(model: Any, pk: Any, held: locks.Held, the_plan: Plan, *, final: bool) -> Result:
    tenant = load(model, pk)
    if tenant is None:
        return Result.MISSING
    if tenant.state in UNBUILT:
        return Result.SKIPPED
    if is_current(tenant.state, tenant.migrations_digest, the_plan.digest):
        return Result.CURRENT
    owner = ownership.tenant_owner(tenant.incarnation)
    found = ownership.schema_owner(tenant.db_schema, tenant.database)
    if not found.exists and tenant.state == FAILED and not tenant.migrations_digest:
        # Failed before its storage was ever built: provisioning builds the current state.
        # (One built once has a digest: its schema is missing, never rebuilt silently.)
        advance(tenant, PENDING, tenant.last_error, expect=(FAILED,))
        return provision_held(model, pk, held, final=final)
    alias = shared.database()
    started = time.monotonic()
    try:
        if not found.exists:
            raise StorageMissing(tenant.db_schema, tenant.database)
        if found.owner != owner:
            raise ForeignObject("schema", tenant.db_schema, tenant.database, found.owner)
        same = tenant.database == alias
        with ddl_transaction(alias) if same else contextlib.nullcontext():
            applied = executor.migrate_schema(tenant.db_schema, tenant.database)
            held.ensure()
            if not advance(tenant, READY, **current_fields(the_plan)):
                if same:
                    transaction.set_rollback(True, using=alias)
                return Result.MISSING
    except Exception as exc:
        record_failure(tenant, exc, final=final or not is_transient(exc), migrating=True)
        raise
    logger.info(
        "migrated: %d migration(s) in %.1f ms", len(applied), (time.monotonic() - started) * 1000
    )
    return Result.MIGRATED


def migrate_tenants(
    pks: list[Any], *, expect: str | None = None, rollout: str = "", worker: str = ""
) -> dict[Any, Result]:
    """Migrate several tenants one after another (each in its own transaction).

    ``expect`` is the plan digest the sender runs: a process with another plan
    migrates nothing, records a :class:`RolloutRefusal` (``rollout``, ``worker``
    name) and answers ``WRONG_VERSION`` for every tenant. A failing tenant
    keeps its error on its row and the others go on; each tenant's result is
    returned (``ERROR`` for a failure, ``RETRY`` for a transient one that the
    caller should send again).
    """
    the_plan = plan()
    if expect and expect != the_plan.digest:
        RolloutRefusal.objects.using(shared.database()).create(
            rollout=rollout, worker=worker[:200], digest=the_plan.digest, tenants=len(pks)
        )
        logger.warning(
            "refused to migrate %d tenant(s): this process runs migration plan %s, the "
            "rollout expects %s (restart it on the new code)",
            len(pks),
            the_plan.digest,
            expect,
        )
        return dict.fromkeys(pks, Result.WRONG_VERSION)
    results: dict[Any, Result] = {}
    with locks.reusing():  # one lock connection for the batch, not one per tenant
        for pk in pks:
            results[pk] = _migrate_in_batch(pk)
    return results


def _migrate_in_batch(pk: Any) -> Result:
    """Migrate one tenant of a batch; a failure is its result, and a transient one is
    sent again on its own."""
    try:
        return migrate_tenant(pk, final=False)
    except Exception as exc:
        # A transient failure leaves the tenant as it was, for a retry.
        logger.warning("migrating tenant %r failed: %s", pk, describe(exc))
        if not is_transient(exc):
            return Result.ERROR
        _send_retry(pk)
        return Result.RETRY


def _send_retry(pk: Any) -> None:
    """Send one tenant's migration again, on its own (with its own retries and backoff),
    to the queue of its database."""
    try:
        database = shared.tenants().filter(pk=pk).values_list("database", flat=True).first()
    except Exception:  # the database is what failed: the reconciler-like resend of the
        database = None  # rollout, or the next tenancy_migrate, finds it behind
    jobs.send(jobs.MIGRATE, pk, database=database)

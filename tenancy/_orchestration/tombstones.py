"""Tombstones: the durable intent to drop a deleted tenant's storage, and the drop.

A tombstone is written in the transaction that deletes the tenant row and
names the deleted incarnation. Writing one reads nothing from the tenant's
database, so a tenant whose database is unreachable is deleted all the same
and its storage dropped once the database is back. The drop removes only
storage that carries that incarnation's mark: a schema someone else made
under the name, or a newer one, is left alone.
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import F
from django.utils import timezone

from tenancy._classes import cache
from tenancy._orchestration.transitions import describe, logger, send_robust
from tenancy._primitives import conf, locks, logs, ownership, provisioning, shared
from tenancy._primitives.records import Tombstone
from tenancy._primitives.states import Result, lock_key
from tenancy.signals import tenant_dropped


def write(tenant: Any, using: str) -> Tombstone | None:
    """Record, in the current transaction on ``using``, that ``tenant``'s storage must go."""
    if not tenant.db_schema:
        return None  # never named, so never provisioned
    cache.evict(tenant.db_schema)  # this process lets go of the classes at once
    # A tenant of an earlier version has no incarnation: its tombstone still keeps the
    # name taken and says what was left (its drop finds no mark to drop by).
    return Tombstone.objects.using(using).create(
        schema=tenant.db_schema,
        database=tenant.database,
        incarnation=tenant.incarnation or "",
        tenant_pk=str(tenant.pk),
        tenant_repr=str(tenant)[:200],
    )


def drop(pk: Any) -> Result:
    """Drop the storage a tombstone stands for; return what happened.

    ``DROPPED``, ``KEPT`` (nothing of the incarnation's is there: never built,
    already dropped, or the name holds someone else's schema), ``DONE``
    (nothing left to do) or ``BUSY`` (a worker still holds the incarnation,
    e.g. builds it; the tombstone stays undone and is sent again).
    """
    alias = shared.database()
    tomb = Tombstone.objects.using(alias).filter(pk=pk).first()
    if tomb is None or tomb.done_at is not None:
        return Result.DONE
    with logs.context(tenant=tomb.tenant_repr, schema=tomb.schema, database=tomb.database):
        return _drop(tomb, alias)


def _drop(tomb: Tombstone, alias: str) -> Result:
    started = time.monotonic()
    if not tomb.incarnation:
        # Written before incarnations were recorded: nothing proves what is ours.
        _finish(
            tomb,
            alias,
            "kept: the tenant had no incarnation (built by an earlier version); its "
            "storage, if any, is left for you to drop",
        )
        return Result.KEPT
    with locks.hold(lock_key(tomb.incarnation), alias, wait=conf.lock_wait()) as held:
        if held is None:
            return Result.BUSY
        tomb.refresh_from_db()
        if tomb.done_at is not None:
            return Result.DONE
        rows = Tombstone.objects.using(alias).filter(pk=tomb.pk)
        rows.update(attempts=F("attempts") + 1)
        try:
            dropped = provisioning.drop_schema(
                tomb.schema, tomb.database, ownership.tenant_owner(tomb.incarnation)
            )
        except Exception as exc:
            rows.update(last_error=describe(exc))
            raise
        _finish(tomb, alias, "")
    cache.evict(tomb.schema)
    logger.info(
        "%s in %.1f ms",
        "dropped" if dropped else "nothing of this tenant to drop",
        (time.monotonic() - started) * 1000,
    )
    if not dropped:
        return Result.KEPT
    send_robust(
        tenant_dropped,
        sender=shared.tenant_model(),
        schema=tomb.schema,
        database=tomb.database,
        incarnation=tomb.incarnation,
    )
    return Result.DROPPED


def _finish(tomb: Tombstone, alias: str, note: str) -> None:
    Tombstone.objects.using(alias).filter(pk=tomb.pk).update(
        done_at=timezone.now(), last_error=note
    )

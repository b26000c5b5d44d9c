"""Migrate every tenant: fan out over the workers, bounded, and collect every outcome.

Used by ``manage.py tenancy_migrate`` and the ``tenancy.migrate_all`` task.
Finding the tenants to migrate is one query (each tenant row carries the
digest of its applied migrations), so a re-run after a partial failure
resumes where it stopped and current tenants cost nothing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from tenancy import get_tenant_model, lifecycle, migrator, notify, tasks
from tenancy.models import TenantState


@dataclass(frozen=True)
class Outcome:
    """What happened to one tenant."""

    pk: Any
    name: str
    schema: str
    ok: bool
    detail: str = ""
    database: str = ""


@dataclass
class Report:
    """Every tenant's outcome, in the order they finished."""

    outcomes: list[Outcome] = field(default_factory=list)
    enqueued: int = 0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def succeeded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    def by_database(self) -> dict[str, dict[str, int]]:
        """Return migrated and failed counts per database alias."""
        counts: dict[str, dict[str, int]] = {}
        for outcome in self.outcomes:
            entry = counts.setdefault(outcome.database or "?", {"migrated": 0, "failed": 0})
            entry["migrated" if outcome.ok else "failed"] += 1
        return counts


#: Called after each tenant finishes: ``progress(outcome, done, total)``.
ProgressCallback = Callable[[Outcome, int, int], None]


def outdated() -> QuerySet[Any]:
    """Return the tenants that are not at the current migrations (ready or failed)."""
    digest = migrator.plan().digest
    tenants = get_tenant_model()._default_manager.using(lifecycle.shared_database())
    return tenants.filter(
        (Q(state=TenantState.READY) & ~Q(migrations_digest=digest)) | Q(state=TenantState.FAILED)
    ).order_by("database", "pk")


def enqueue_all(batch_size: int = 50) -> int:
    """Send migrate tasks for every outdated tenant, without waiting; return how many tenants."""
    by_database: dict[str, list[Any]] = {}
    for pk, database in outdated().values_list("pk", "database"):
        by_database.setdefault(database, []).append(pk)
    for database, pks in by_database.items():
        for index in range(0, len(pks), batch_size):
            batch = pks[index : index + batch_size]
            tasks.dispatch(tasks.migrate_tenants, batch, database=database)
    return sum(len(pks) for pks in by_database.values())


def run_inline(progress: ProgressCallback | None = None) -> Report:
    """Migrate every outdated tenant in this process, one after another."""
    report = Report()
    seen: set[Any] = set()
    while batch := [t for t in outdated() if t.pk not in seen]:
        for tenant in batch:
            seen.add(tenant.pk)
            try:
                result = lifecycle.migrate_tenant(tenant.pk)
                outcome = _outcome(tenant, ok=result != "busy", detail=result)
            except Exception as exc:
                outcome = _outcome(tenant, ok=False, detail=lifecycle.describe(exc))
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome, len(report.outcomes), len(seen))
    return report


def run(
    *,
    concurrency: int = 8,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
    poll: float = 0.25,
) -> Report:
    """Migrate every outdated tenant through the workers and wait for all of them.

    Tenants go out in batches (one task migrates several tenants, each in its
    own transaction) and at most ``concurrency`` batches are in flight, so a
    fleet never floods the database with DDL. Tenants that become ready at an
    old state while this runs (provisioned by an older worker) are picked up.
    """
    digest = migrator.plan().digest
    manager = get_tenant_model()._default_manager.using(lifecycle.shared_database())
    report = Report()
    queue: deque[Any] = deque()
    flight: dict[Any, Any] = {}  # pk -> state_changed_at when sent
    batches: list[set[Any]] = []
    seen: set[Any] = set()
    deadline = None if timeout is None else time.monotonic() + timeout

    def refill() -> None:
        for tenant in outdated():
            if tenant.pk not in seen:
                seen.add(tenant.pk)
                queue.append(tenant)

    def finish(outcome: Outcome) -> None:
        flight.pop(outcome.pk, None)
        for batch in batches:
            batch.discard(outcome.pk)
        batches[:] = [batch for batch in batches if batch]
        _finish(report, outcome, progress, seen)

    refill()
    while queue or flight:
        while queue and len(batches) < concurrency:
            size = batch_size or max(1, min(50, math.ceil(len(queue) / (concurrency * 4))))
            database = queue[0].database
            batch = []
            while queue and len(batch) < size and queue[0].database == database:
                batch.append(queue.popleft())
            if tasks.dispatch(tasks.migrate_tenants, [t.pk for t in batch], database=database):
                flight.update({t.pk: t.state_changed_at for t in batch})
                batches.append({t.pk for t in batch})
                report.enqueued += len(batch)
            else:
                for tenant in batch:
                    _finish(report, _outcome(tenant, False, "could not enqueue"), progress, seen)
        notify.wait(lambda: False, manager.db, poll, poll)
        rows = {t.pk: t for t in manager.filter(pk__in=list(flight))}
        for pk in list(flight):
            tenant = rows.get(pk)
            if tenant is None:
                finish(Outcome(pk, str(pk), "", True, "deleted"))
            elif tenant.state == TenantState.READY and tenant.migrations_digest == digest:
                finish(_outcome(tenant, True, "migrated"))
            elif tenant.state == TenantState.FAILED and tenant.state_changed_at != flight[pk]:
                finish(_outcome(tenant, False, tenant.last_error))
        if not queue and not flight:
            refill()
        if deadline is not None and time.monotonic() > deadline:
            for pk in list(flight):
                finish(Outcome(pk, str(pk), "", False, "timed out"))
            break
    return report


def _finish(
    report: Report, outcome: Outcome, progress: ProgressCallback | None, seen: set[Any]
) -> None:
    report.outcomes.append(outcome)
    if progress is not None:
        progress(outcome, len(report.outcomes), len(seen))


def _outcome(tenant: Any, ok: bool, detail: str) -> Outcome:
    key = tenant.natural_key()
    name = str(key[0]) if len(key) == 1 else str(key)
    return Outcome(tenant.pk, name, tenant.db_schema or "", ok, detail, tenant.database)

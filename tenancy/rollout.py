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
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from django.db.models import Q, QuerySet

from tenancy import get_tenant_model, lifecycle, locks, logs, migrator, notify, tasks
from tenancy.models import TenantState

logger = logs.get_logger("tenancy.rollout")


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
    #: Tenants sent again because no worker showed signs of working on them.
    resent: int = 0

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
    tenants = get_tenant_model()._default_manager.using(lifecycle.shared_database())
    return tenants.filter(_outdated_q(migrator.plan().digest)).order_by("database", "pk")


def _outdated_q(digest: str) -> Q:
    return (Q(state=TenantState.READY) & ~Q(migrations_digest=digest)) | Q(state=TenantState.FAILED)


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


#: Seconds the tenants in flight may show no sign of a worker (no row changed, no
#: lock held) before :func:`run` sends them again. A worker that dies (SIGKILL, OOM,
#: a lost host) leaves its prefetched messages unacknowledged in the broker until
#: Redis' visibility timeout, an hour by default; a rollout should not wait for
#: that. A worker on a tenant in flight shows itself at once: it holds the tenant's
#: lock for the whole migration, however long, and writes the row when done; the
#: gap between two tenants of a batch is milliseconds. Only workers busy with other
#: tasks for that long look like dead ones, and a false alarm costs little: each
#: duplicate delivery reads one row ("current") or waits for the lock ("busy").
#: 15 s keeps those rare while being short next to a deploy.
RESEND_GRACE = 15.0
#: Longest pause between two attempts to reach a database that went away.
MAX_BACKOFF = 5.0


@dataclass
class _Tracked:
    """A tenant :func:`run` waits for: its row as last seen, and since when it is so."""

    tenant: Any
    since: float = field(default_factory=time.monotonic)

    def update(self, tenant: Any) -> bool:
        """Take the fresh row; return whether the worker changed it."""
        changed = tenant.state_changed_at != self.tenant.state_changed_at
        self.tenant = tenant
        if changed:
            self.since = time.monotonic()
        return changed


def run(
    *,
    concurrency: int = 8,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
    poll: float = 0.25,
    grace: float = RESEND_GRACE,
) -> Report:
    """Migrate every outdated tenant through the workers and wait for all of them.

    Tenants go out in batches (one task migrates several tenants, each in its
    own transaction) and at most ``concurrency`` batches are in flight, so a
    fleet never floods the database with DDL.

    While it waits, the rollout also:

    - watches the tenants that were ``pending`` or ``provisioning`` when it
      started (a worker of the previous release may be building them with the
      old migrations) and migrates each one that becomes ready at an old
      state, so it never reports success with such a tenant left behind;
    - sends again the tenants whose worker died (see :data:`RESEND_GRACE`,
      overridden by ``grace``), and provisioning that nobody holds;
    - rides out a lost database connection (a restart, a failover, a
      terminated backend): it reconnects with backoff until the database is
      back or ``timeout`` passes, since the workers keep going meanwhile.

    A tenant still unfinished at ``timeout`` gets a failed "timed out" outcome.
    Nothing outdated and nothing being provisioned costs one query.
    """
    return _Rollout(concurrency, batch_size, progress, timeout, poll, grace).run()


class _Rollout:
    """The state of one :func:`run`: what is queued, in flight and watched."""

    def __init__(
        self,
        concurrency: int,
        batch_size: int | None,
        progress: ProgressCallback | None,
        timeout: float | None,
        poll: float,
        grace: float,
    ) -> None:
        self.concurrency, self.batch_size, self.progress = concurrency, batch_size, progress
        self.poll, self.grace = poll, grace
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.digest = migrator.plan().digest
        self.alias = lifecycle.shared_database()
        self.manager = get_tenant_model()._default_manager.using(self.alias)
        self.report = Report()
        self.queue: deque[Any] = deque()
        self.flight: dict[Any, _Tracked] = {}
        self.watching: dict[Any, _Tracked] = {}
        self.batches: list[tuple[str, set[Any]]] = []
        self.seen: set[Any] = set()
        self.active_at = time.monotonic()  # the last sign of a worker on the tenants in flight

    def run(self) -> Report:
        self._start()
        outage: float | None = None
        backoff = self.poll
        while self.queue or self.flight or self.watching:
            try:
                self._round()
            except _connection_errors(self.alias) as exc:
                outage = time.monotonic() if outage is None else outage
                self._lost_connection(exc, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                if outage is not None:
                    logger.info("the database is back after %.1f s", time.monotonic() - outage)
                outage, backoff = None, self.poll
            if self._expired():
                self._time_out()
                break
        return self.report

    # -- the steps of a run --

    def _start(self) -> None:
        """Queue the outdated tenants and watch those being provisioned: one query."""
        building = Q(state__in=[TenantState.PENDING, TenantState.PROVISIONING])
        for tenant in self.manager.filter(_outdated_q(self.digest) | building).order_by(
            "database", "pk"
        ):
            if tenant.state in (TenantState.PENDING, TenantState.PROVISIONING):
                self.watching[tenant.pk] = _Tracked(tenant)
            else:
                self._enqueue(tenant)

    def _round(self) -> None:
        """Send what fits, wait a little, then look at every tenant being waited for."""
        self._send()
        notify.wait(lambda: False, self.alias, self.poll, self.poll)
        self._observe()
        if not self.queue and not self.flight:
            for tenant in outdated():  # e.g. ready at an old state since the start
                self._enqueue(tenant)
        self._resend_if_stalled()
        self._nudge_stuck_provisioning()

    def _send(self) -> None:
        while self.queue and len(self.batches) < self.concurrency:
            size = self.batch_size or max(
                1, min(50, math.ceil(len(self.queue) / (self.concurrency * 4)))
            )
            database = self.queue[0].database
            batch = []
            while self.queue and len(batch) < size and self.queue[0].database == database:
                batch.append(self.queue.popleft())
            if tasks.dispatch(tasks.migrate_tenants, [t.pk for t in batch], database=database):
                self.flight.update({t.pk: _Tracked(t) for t in batch})
                self.batches.append((database, {t.pk for t in batch}))
                self.report.enqueued += len(batch)
                self.active_at = time.monotonic()
            else:
                for tenant in batch:
                    self._finish(_outcome(tenant, False, "could not enqueue"))

    def _observe(self) -> None:
        """Read every tenant in flight or watched (one query) and act on what changed."""
        rows = {t.pk: t for t in self.manager.filter(pk__in=[*self.flight, *self.watching])}
        for pk, tracked in list(self.flight.items()):
            self._observe_sent(tracked, rows.get(pk))
        for pk, tracked in list(self.watching.items()):
            self._observe_watched(tracked, rows.get(pk))

    def _observe_sent(self, tracked: _Tracked, tenant: Any) -> None:
        if tenant is None:
            self._finish(_outcome(tracked.tenant, True, "deleted"))
            return
        changed = tracked.update(tenant)
        if changed:
            self.active_at = time.monotonic()
        if tenant.state == TenantState.READY and tenant.migrations_digest == self.digest:
            self._finish(_outcome(tenant, True, "migrated"))
        elif tenant.state == TenantState.FAILED and changed:
            self._finish(_outcome(tenant, False, tenant.last_error))

    def _observe_watched(self, tracked: _Tracked, tenant: Any) -> None:
        if tenant is None:
            del self.watching[tracked.tenant.pk]  # deleted before it was ever built
            return
        tracked.update(tenant)
        if tenant.state in (TenantState.PENDING, TenantState.PROVISIONING):
            return
        del self.watching[tenant.pk]
        if tenant.state != TenantState.READY or tenant.migrations_digest != self.digest:
            self._enqueue(tenant)  # built with older migrations, or failed: migrate it

    def _resend_if_stalled(self) -> None:
        """Send the tenants in flight again if no worker has shown itself for ``grace``.

        Checked for the whole flight, not per tenant: a batch waiting in the broker
        behind a busy worker looks like a lost one, but then another tenant's row
        changes or its lock is held. Only when none does are the workers gone.
        """
        if not self.flight or time.monotonic() - self.active_at < self.grace:
            return
        if any(self._locked(t.tenant) for t in self.flight.values()):
            self.active_at = time.monotonic()
            return
        logger.warning(
            "no worker has touched %d tenant(s) in flight for %.0f s: sending them again",
            len(self.flight),
            time.monotonic() - self.active_at,
        )
        for database, pks in self.batches:
            if tasks.dispatch(tasks.migrate_tenants, list(pks), database=database):
                self.report.resent += len(pks)
        self.active_at = time.monotonic()

    def _nudge_stuck_provisioning(self) -> None:
        """Send provisioning again for a watched tenant nobody has touched for ``grace``.

        As the reconciler would: its task may be lost (a dead worker, a broker
        restart), and the rollout must not wait for it until its timeout.
        """
        now = time.monotonic()
        for tracked in self.watching.values():
            if now - tracked.since < self.grace:
                continue
            tracked.since = now  # checked again in ``grace`` seconds at the earliest
            if not self._locked(tracked.tenant):
                tenant = tracked.tenant
                tasks.dispatch(tasks.provision_tenant, tenant.pk, database=tenant.database or None)

    def _lost_connection(self, exc: BaseException, backoff: float) -> None:
        """Drop the broken connection and pause before the next try (never past the deadline)."""
        logger.warning(
            "lost the database connection (%s); retrying in %.1f s",
            lifecycle.describe(exc).splitlines()[0],
            backoff,
        )
        with suppress(Exception):
            connections[self.alias].close()
        remaining = math.inf if self.deadline is None else self.deadline - time.monotonic()
        time.sleep(max(0.0, min(backoff, remaining)))

    def _time_out(self) -> None:
        for tracked in list(self.flight.values()):
            self._finish(_outcome(tracked.tenant, False, "timed out"))
        while self.queue:
            self._finish(_outcome(self.queue.popleft(), False, "timed out before it was sent"))
        for tracked in list(self.watching.values()):
            tenant = tracked.tenant
            self.seen.add(tenant.pk)
            self._finish(_outcome(tenant, False, f"timed out while {tenant.state}"))
        self.watching.clear()

    # -- helpers --

    def _enqueue(self, tenant: Any) -> None:
        if tenant.pk in self.seen:
            return
        self.seen.add(tenant.pk)
        self.watching.pop(tenant.pk, None)
        self.queue.append(tenant)

    def _finish(self, outcome: Outcome) -> None:
        self.flight.pop(outcome.pk, None)
        for _, batch in self.batches:
            batch.discard(outcome.pk)
        self.batches[:] = [(database, batch) for database, batch in self.batches if batch]
        _finish(self.report, outcome, self.progress, self.seen)

    def _locked(self, tenant: Any) -> bool:
        return bool(tenant.db_schema) and locks.is_locked(tenant.db_schema, self.alias)

    def _expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def _connection_errors(alias: str) -> tuple[type[BaseException], ...]:
    """Return the errors of a lost connection: Django's, and the driver's own (raised by
    the raw connection that listens for notifications)."""
    driver = connections[alias].Database
    return (OperationalError, InterfaceError, driver.OperationalError, driver.InterfaceError)


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

"""Migrate every tenant: fan out over the workers, bounded, and collect every outcome.

Used by ``manage.py tenancy_migrate`` and the ``tenancy.migrate_all`` task.
Finding the tenants to migrate is one query (each tenant row carries the
digest of its applied migrations), so a re-run after a partial failure
resumes where it stopped and current tenants cost nothing.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from django.db.models import Q, QuerySet

from tenancy._migrating.plan import plan
from tenancy._orchestration.migrate import migrate_tenant
from tenancy._orchestration.transitions import describe
from tenancy._primitives import jobs, locks, logs, notify, shared
from tenancy._primitives.records import RolloutRefusal
from tenancy._primitives.states import FAILED, UNBUILT, Result, behind, is_current, lock_key

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
    #: Workers that answered they run another version of the migrations than this
    #: process: ``{worker: plan digest}``.
    other_versions: dict[str, str] = field(default_factory=dict)
    #: The plan digest this process runs (what the workers were asked to have).
    digest: str = ""

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
    return shared.tenants().filter(behind(plan().digest)).order_by("database", "pk")


@dataclass
class Enqueued:
    """What :func:`enqueue_all` sent, and what it could not send."""

    sent: int = 0
    #: Tenants whose batch could not be sent (the broker was unreachable), by pk.
    unsent: list[Any] = field(default_factory=list)


def enqueue_all(batch_size: int = 50) -> Enqueued:
    """Send migrate tasks for every outdated tenant, without waiting for them."""
    by_database: dict[str, list[Any]] = {}
    for pk, database in outdated().values_list("pk", "database"):
        by_database.setdefault(database, []).append(pk)
    result = Enqueued()
    digest = plan().digest
    for database, pks in by_database.items():
        for index in range(0, len(pks), batch_size):
            batch = pks[index : index + batch_size]
            if jobs.send(jobs.MIGRATE_BATCH, batch, digest, "", database=database):
                result.sent += len(batch)
            else:
                result.unsent += batch
    return result


def run_inline(progress: ProgressCallback | None = None) -> Report:
    """Migrate every outdated tenant in this process, one after another."""
    report = Report()
    seen: set[Any] = set()
    with locks.reusing():  # one lock connection for the run, not one per tenant
        _migrate_inline(report, seen, progress)
    return report


def _migrate_inline(report: Report, seen: set[Any], progress: ProgressCallback | None) -> None:
    while batch := [t for t in outdated() if t.pk not in seen]:
        for tenant in batch:
            seen.add(tenant.pk)
            if not tenant.incarnation:
                report.outcomes.append(_outcome(tenant, ok=False, detail=LEGACY))
                continue
            try:
                result = migrate_tenant(tenant.pk)
                outcome = _outcome(tenant, ok=result != Result.BUSY, detail=str(result))
            except Exception as exc:
                outcome = _outcome(tenant, ok=False, detail=describe(exc))
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome, len(report.outcomes), len(seen))


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
#: Longest pause between two attempts to reach a database (or a broker) that went away.
MAX_BACKOFF = 5.0
#: The outcome of a tenant built by an earlier version, which is never migrated unmarked.
LEGACY = (
    "not migrated: built by an earlier version of django-tenancy (no incarnation); run "
    "`manage.py tenancy_reconcile --adopt-legacy` first"
)
#: Seconds a rollout waits for its tenants by default before giving up on them.
DEFAULT_TIMEOUT = 3600.0


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
    timeout: float | None = DEFAULT_TIMEOUT,
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
      back or ``timeout`` passes, since the workers keep going meanwhile;
    - rides out a broker that cannot be reached: a batch that could not be
      sent goes back to the queue and is sent again, with backoff;
    - stops at once when a worker answers that it runs another version of
      the migrations (each batch carries the plan this process expects): the
      report names those workers (``other_versions``), which must be restarted.

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
        self.digest = plan().digest
        self.alias = shared.database()
        self.manager = shared.tenants(self.alias)
        self.report = Report(digest=self.digest)
        self.rollout = uuid.uuid4().hex
        #: When a send failed: not before this moment is the broker tried again.
        self.send_after = 0.0
        self.send_backoff = poll
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
            if self.report.other_versions:
                self._stop_for_other_versions()
                break
            if self._expired():
                self._time_out()
                break
        return self.report

    # -- the steps of a run --

    def _start(self) -> None:
        """Queue the outdated tenants and watch those being provisioned: one query."""
        building = Q(state__in=UNBUILT)
        for tenant in self.manager.filter(behind(self.digest) | building).order_by(
            "database", "pk"
        ):
            if tenant.state in UNBUILT:
                self.watching[tenant.pk] = _Tracked(tenant)
            elif not tenant.incarnation:
                self.seen.add(tenant.pk)
                self._finish(_outcome(tenant, False, LEGACY))
            else:
                self._enqueue(tenant)

    def _round(self) -> None:
        """Send what fits, wait a little, then look at every tenant being waited for."""
        self._send()
        notify.wait(lambda: False, self.alias, self.poll, self.poll)
        self._observe()
        self._read_refusals()
        if not self.queue and not self.flight:
            for tenant in outdated():  # e.g. ready at an old state since the start
                self._enqueue(tenant)
        self._resend_if_stalled()
        self._nudge_stuck_provisioning()

    def _send(self) -> None:
        if time.monotonic() < self.send_after:
            return  # the broker could not be reached a moment ago
        while self.queue and len(self.batches) < self.concurrency:
            size = self.batch_size or max(
                1, min(50, math.ceil(len(self.queue) / (self.concurrency * 4)))
            )
            database = self.queue[0].database
            batch: list[Any] = []
            while self.queue and len(batch) < size and self.queue[0].database == database:
                batch.append(self.queue.popleft())
            if not self._dispatch([t.pk for t in batch], database):
                # Back to the front of the queue, in order, for the next try.
                self.queue.extendleft(reversed(batch))
                return
            self.flight.update({t.pk: _Tracked(t) for t in batch})
            self.batches.append((database, {t.pk for t in batch}))
            self.report.enqueued += len(batch)
            self.active_at = time.monotonic()

    def _dispatch(self, pks: list[Any], database: str) -> bool:
        """Send one batch; on a failed send, back off before the next (the broker is down)."""
        if jobs.send(jobs.MIGRATE_BATCH, pks, self.digest, self.rollout, database=database):
            self.send_backoff = self.poll
            return True
        logger.warning(
            "could not send a batch of %d tenant(s) to the broker; trying again in %.1f s",
            len(pks),
            self.send_backoff,
        )
        self.send_after = time.monotonic() + self.send_backoff
        self.send_backoff = min(self.send_backoff * 2, MAX_BACKOFF)
        return False

    def _read_refusals(self) -> None:
        """Collect the answers of workers that run another version of the migrations."""
        for worker, digest in (
            RolloutRefusal.objects.using(self.alias)
            .filter(rollout=self.rollout)
            .values_list("worker", "digest")
        ):
            self.report.other_versions[worker or "?"] = digest

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
        if is_current(tenant.state, tenant.migrations_digest, self.digest):
            self._finish(_outcome(tenant, True, "migrated"))
        elif tenant.state == FAILED and changed:
            self._finish(_outcome(tenant, False, tenant.last_error))

    def _observe_watched(self, tracked: _Tracked, tenant: Any) -> None:
        if tenant is None:
            del self.watching[tracked.tenant.pk]  # deleted before it was ever built
            return
        tracked.update(tenant)
        if tenant.state in UNBUILT:
            return
        del self.watching[tenant.pk]
        if not is_current(tenant.state, tenant.migrations_digest, self.digest):
            self._enqueue(tenant)  # built with older migrations, or failed: migrate it

    def _resend_if_stalled(self) -> None:
        """Send the tenants in flight again if no worker has shown itself for ``grace``.

        Checked for the whole flight, not per tenant: a batch waiting in the broker
        behind a busy worker looks like a lost one, but then another tenant's row
        changes or its lock is held. Only when none does are the workers gone.
        """
        if not self.flight or time.monotonic() - self.active_at < self.grace:
            return
        if self._held([t.tenant for t in self.flight.values()]):
            self.active_at = time.monotonic()
            return
        logger.warning(
            "no worker has touched %d tenant(s) in flight for %.0f s: sending them again",
            len(self.flight),
            time.monotonic() - self.active_at,
        )
        for database, pks in self.batches:
            if self._dispatch(list(pks), database):
                self.report.resent += len(pks)
        self.active_at = time.monotonic()

    def _nudge_stuck_provisioning(self) -> None:
        """Send provisioning again for a watched tenant nobody has touched for ``grace``.

        As the reconciler would: its task may be lost (a dead worker, a broker
        restart), and the rollout must not wait for it until its timeout.
        """
        now = time.monotonic()
        due = [t for t in self.watching.values() if now - t.since >= self.grace]
        held = self._held([t.tenant for t in due])
        for tracked in due:
            tracked.since = now  # checked again in ``grace`` seconds at the earliest
            tenant = tracked.tenant
            if tenant.pk not in held:
                jobs.send(jobs.PROVISION, tenant.pk, database=tenant.database or None)

    def _lost_connection(self, exc: BaseException, backoff: float) -> None:
        """Drop the broken connection and pause before the next try (never past the deadline)."""
        logger.warning(
            "lost the database connection (%s); retrying in %.1f s",
            describe(exc).splitlines()[0],
            backoff,
        )
        with suppress(Exception):
            connections[self.alias].close()
        remaining = math.inf if self.deadline is None else self.deadline - time.monotonic()
        time.sleep(max(0.0, min(backoff, remaining)))

    def _stop_for_other_versions(self) -> None:
        """End the run: workers on another version of the code would never migrate them."""
        workers = ", ".join(sorted(self.report.other_versions))
        detail = f"not migrated: worker(s) {workers} run another version of the migrations"
        for tracked in list(self.flight.values()):
            self._finish(_outcome(tracked.tenant, False, detail))
        while self.queue:
            self._finish(_outcome(self.queue.popleft(), False, detail))
        for tracked in list(self.watching.values()):
            self.seen.add(tracked.tenant.pk)
            self._finish(_outcome(tracked.tenant, False, detail))
        self.watching.clear()

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

    def _held(self, tenants: list[Any]) -> set[Any]:
        """Return the pks of the tenants some process holds right now (one query)."""
        names = {lock_key(t.incarnation): t.pk for t in tenants if t.incarnation}
        return {names[name] for name in locks.held_among(list(names), self.alias)}

    def _expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def _connection_errors(alias: str) -> tuple[type[BaseException], ...]:
    """Return the errors of a lost connection: Django's, and the driver's own (raised by
    the raw connection that listens for notifications)."""
    driver = connections[alias].Database  # type: ignore[attr-defined]  # stubs omit the DB-API module
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

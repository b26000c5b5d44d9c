"""The reconciler: send again whatever no process will finish by itself.

It runs as a periodic task (Celery beat) and as ``manage.py
tenancy_reconcile``. Each pass looks at the durable state only:

- tenant rows never named (``bulk_create()``, raw SQL): named now, and their
  provisioning sent at once (no task was ever sent for them); a key that names
  no schema marks the tenant failed with the reason;
- pending tenants, and provisioning tenants that no process holds, older than
  the grace period (a task may still be on its way for younger ones);
- tombstones not done (a drop lost with its message, or refused while the
  tenant's database was unreachable);
- moves interrupted before they finished (the mover died): rolled back, or
  finished when they had switched.

What it leaves alone, and why, is in its report, so an operator running it by
hand knows what to expect ("3 pending tenant(s) younger than the 60 s grace").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from tenancy._orchestration import move
from tenancy._orchestration.provision import name_or_fail, retry
from tenancy._orchestration.transitions import describe, logger
from tenancy._primitives import conf, jobs, locks, shared
from tenancy._primitives.records import Tombstone
from tenancy._primitives.states import FAILED, PENDING, PROVISIONING, lock_key


@dataclass
class ReconcileReport:
    """What one reconciliation pass found, sent and left alone."""

    grace: float = 0.0
    #: Tenants whose provisioning was sent: pending (named now or before).
    pending: list[Any] = field(default_factory=list)
    #: Provisioning tenants that no process held.
    stuck: list[Any] = field(default_factory=list)
    #: Undone drops sent again.
    tombstones: list[Any] = field(default_factory=list)
    #: Tenants whose key names no schema: marked failed.
    unnamable: list[Any] = field(default_factory=list)
    #: Interrupted moves, and what was made of them.
    operations: list[str] = field(default_factory=list)
    #: Left alone: tenants and drops younger than the grace, tenants a process holds.
    young_pending: int = 0
    young_drops: int = 0
    held: list[Any] = field(default_factory=list)
    #: Sends that failed (the broker is down): the next pass sends them again.
    unsent: int = 0

    def __str__(self) -> str:
        sent = (
            f"re-enqueued {len(self.pending)} pending, {len(self.stuck)} stuck provisioning, "
            f"{len(self.tombstones)} undone drops"
        )
        notes = []
        if self.unnamable:
            notes.append(f"{len(self.unnamable)} tenant(s) whose key names no schema marked failed")
        notes += self.operations
        if self.unsent:
            notes.append(f"{self.unsent} send(s) failed (is the broker up?); run it again")
        alone = []
        if self.young_pending:
            alone.append(f"{self.young_pending} pending tenant(s)")
        if self.young_drops:
            alone.append(f"{self.young_drops} drop(s)")
        if alone:
            notes.append(
                f"left alone: {' and '.join(alone)} younger than the {self.grace:g} s grace "
                "(their task may still be queued; --grace 0 to send them now)"
            )
        if self.held:
            notes.append(f"left alone: {len(self.held)} tenant(s) a worker is working on")
        return "; ".join([sent, *notes])

    @property
    def left_alone(self) -> int:
        """How many tenants and drops this pass did not act on."""
        return self.young_pending + self.young_drops + len(self.held)


def reconcile(*, grace: float | None = None) -> ReconcileReport:
    """Send again what is stuck; see the module docstring.

    ``grace`` (default ``TENANCY_RECONCILE_GRACE``) spares pending tenants and
    drops younger than that many seconds, whose task is probably still queued.
    """
    grace = conf.reconcile_grace() if grace is None else grace
    alias = shared.database()
    cutoff = timezone.now() - timedelta(seconds=grace)
    report = ReconcileReport(grace=grace)
    tenants = shared.tenants(alias)
    for op in move.interrupted():
        report.operations.append(f"{op.schema}: {move.recover(op)}")
    databases: dict[Any, str] = {}
    for tenant in tenants.filter(state=PENDING, incarnation__isnull=True):
        if name_or_fail(tenant):
            report.pending.append(tenant.pk)
            databases[tenant.pk] = tenant.database
        else:
            report.unnamable.append(tenant.pk)
    building = list(
        tenants.filter(state__in=[PENDING, PROVISIONING], incarnation__isnull=False)
        .exclude(pk__in=report.pending)
        .values_list("pk", "state", "database", "incarnation", "state_changed_at")
    )
    held = locks.held_among([lock_key(row[3]) for row in building if row[3]], alias)
    for pk, state, database, incarnation, changed in building:
        if incarnation and lock_key(incarnation) in held:
            report.held.append(pk)
        elif changed > cutoff:
            report.young_pending += 1
        else:
            (report.pending if state == PENDING else report.stuck).append(pk)
            databases[pk] = database
    for pk in (*report.pending, *report.stuck):
        if not jobs.send(jobs.PROVISION, pk, database=databases.get(pk) or None):
            report.unsent += 1
    drops = Tombstone.objects.using(alias).filter(done_at__isnull=True)
    report.young_drops = drops.filter(deleted_at__gt=cutoff).count()
    for pk, database in drops.filter(deleted_at__lte=cutoff).values_list("pk", "database"):
        report.tombstones.append(pk)
        if not jobs.send(jobs.DROP, pk, database=database):
            report.unsent += 1
    if report.pending or report.stuck or report.tombstones or report.unnamable:
        logger.info("reconcile: %s", report)
    return report


def retry_failed() -> tuple[list[Any], dict[Any, str]]:
    """Retry every failed tenant; return the ids retried and the errors of those that
    failed again inline (``TENANCY_EAGER``), going on after a failure."""
    retried: list[Any] = []
    errors: dict[Any, str] = {}
    for tenant in shared.tenants().filter(state=FAILED).order_by("pk"):
        retried.append(tenant.pk)
        try:
            retry(tenant)
        except Exception as exc:
            errors[tenant.pk] = describe(exc)
            continue
        if conf.eager():  # provisioned inline: its outcome is on the row already
            tenant.refresh_from_db(fields=["state", "last_error"])
            if tenant.state == FAILED:
                errors[tenant.pk] = tenant.last_error
    return retried, errors

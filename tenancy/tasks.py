"""Celery tasks: thin adapters over the lifecycle.

Defined with ``shared_task`` so the host project's Celery app picks them up.
The library sets what at-least-once delivery needs (``acks_late``,
``reject_on_worker_lost``): a task whose worker dies is delivered again, and
the lifecycle makes a second delivery harmless. Task names are stable
(``tenancy.<name>``) for monitoring and routing. Each task loads nothing and
decides nothing: it calls one lifecycle function and maps a transient failure
to a Celery retry with backoff.

:func:`send` is how the lifecycle's work reaches these tasks; the app installs
it at start-up (``tenancy.apps``).

The projects' own per-tenant tasks are made with :func:`tenant_task` and sent to
every tenant by :func:`for_each_tenant` (or by the beat-ready task
``tenancy.for_each_tenant``, which takes a task's name); see docs/tasks.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from kombu.exceptions import OperationalError as BrokerError

from tenancy._delivery import dispatch
from tenancy._delivery.tenant_tasks import (
    TENANT_DATABASE_QUEUE,
    FanOut,
    TenantTask,
    for_each_tenant,
    named,
    tenant_task,
)
from tenancy._orchestration import migrate, pool, provision, rollout, tombstones, user_tasks
from tenancy._orchestration import reconcile as reconciler
from tenancy._orchestration.transitions import is_transient
from tenancy._primitives import conf, jobs, logs
from tenancy._primitives.states import Result

__all__ = [
    "TENANT_DATABASE_QUEUE",
    "FanOut",
    "TenantTask",
    "drop_tenant",
    "for_each_tenant",
    "for_each_tenant_named",
    "migrate_all",
    "migrate_tenant",
    "migrate_tenants",
    "provision_tenant",
    "reconcile",
    "refill_pool",
    "send",
    "tenant_task",
    "tenants_at_local_hour",
]

logger = logs.get_logger("tenancy.tasks")

_TASK_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="tenancy.provision_tenant", **_TASK_OPTIONS)
def provision_tenant(self: Task, pk: Any) -> str:
    """Provision one tenant by primary key, retrying transient failures with backoff."""
    return _with_retries(self, provision.provision_tenant, pk)


@shared_task(name="tenancy.drop_tenant", **_TASK_OPTIONS)
def drop_tenant(self: Task, tombstone_pk: Any) -> str:
    """Drop a deleted tenant's storage, by the id of its tombstone."""
    # On a final failure the tombstone keeps the error; the reconciler tries again later.
    return _with_retries(self, lambda pk, final: tombstones.drop(pk), tombstone_pk)


@shared_task(name="tenancy.migrate_tenant", **_TASK_OPTIONS)
def migrate_tenant(self: Task, pk: Any) -> str:
    """Apply the missing migrations to one tenant's schema."""
    return _with_retries(self, migrate.migrate_tenant, pk)


@shared_task(name="tenancy.migrate_tenants", **_TASK_OPTIONS)
def migrate_tenants(
    self: Task, pks: list[Any], expect: str | None = None, rollout_id: str = ""
) -> dict[str, str]:
    """Migrate a batch of tenants (a fleet rollout sends batches to cut per-task overhead).

    ``expect`` is the migration plan the sender runs: a worker on another version
    of the code migrates nothing and says so (see ``tenancy_migrate``).
    """
    with logs.context(task=self.request.id):
        results = migrate.migrate_tenants(
            pks, expect=expect, rollout=rollout_id, worker=self.request.hostname or ""
        )
    return {str(pk): str(result) for pk, result in results.items()}


@shared_task(name="tenancy.migrate_all", **_TASK_OPTIONS)
def migrate_all(self: Task) -> int:
    """Send migrate tasks for every tenant that is not current; return how many were sent."""
    return rollout.enqueue_all().sent


@shared_task(name="tenancy.refill_pool", **_TASK_OPTIONS)
def refill_pool(self: Task, database: str = "default") -> int:
    """Build pooled schemas up to ``TENANCY_POOL_SIZE`` on ``database``."""
    return pool.refill(database)


@shared_task(name="tenancy.reconcile", **_TASK_OPTIONS)
def reconcile(self: Task, grace: float | None = None) -> str:
    """Send again what is stuck; meant for Celery beat (see the docs)."""
    return str(reconciler.reconcile(grace=grace))


@shared_task(name="tenancy.for_each_tenant", bind=True)
def for_each_tenant_named(
    self: Task,
    task: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    spread: float = 0,
    states: list[str] | None = None,
    spread_mode: str = "even",
    local_hour: int | None = None,
    timezone_field: str = "timezone",
) -> int:
    """Send the tenant task named ``task`` to every tenant; for Celery beat.

    ``local_hour`` picks only the tenants whose local time (the time zone name in
    their ``timezone_field``) is that hour now: run it hourly. Returns how many
    tasks were sent.
    """
    chosen = named(self.app, task)
    queryset = None
    if local_hour is not None:
        queryset = user_tasks.at_local_hour(local_hour, field=timezone_field)
    with logs.context(task=self.request.id):
        return int(
            for_each_tenant(
                chosen,
                *(args or ()),
                spread=spread,
                states=tuple(states or ("ready",)),
                queryset=queryset,
                spread_mode=spread_mode,
                **(kwargs or {}),
            )
        )


#: ``tenants_at_local_hour(hour, field="timezone", queryset=None)``: the tenants whose
#: local time is ``hour`` o'clock now (for per-tenant schedules in their own time zone).
tenants_at_local_hour = user_tasks.at_local_hour


#: The task that carries each lifecycle job.
_TASKS: dict[str, Task] = {
    jobs.PROVISION: provision_tenant,
    jobs.DROP: drop_tenant,
    jobs.MIGRATE: migrate_tenant,
    jobs.MIGRATE_BATCH: migrate_tenants,
    jobs.REFILL_POOL: refill_pool,
    jobs.RECONCILE: reconcile,
}


def send(job: jobs.Job) -> bool:
    """Send a lifecycle job as its Celery task (inline with ``TENANCY_EAGER``)."""
    return dispatch.publish(_TASKS[job.name], job.args, database=job.database)


def _with_retries(task: Task, work: Callable[..., Result], pk: Any) -> str:
    """Run ``work(pk, final=...)``, retrying transient failures with backoff."""
    limit = conf.max_retries()
    final = task.request.retries >= limit
    with logs.context(task=task.request.id):
        try:
            return str(work(pk, final=final))
        except Exception as exc:
            if final or not _transient(exc):
                raise
            logger.warning("transient failure, retry %d: %s", task.request.retries + 1, exc)
            raise task.retry(
                exc=exc, countdown=_backoff(task.request.retries), max_retries=limit
            ) from exc


def _transient(exc: BaseException) -> bool:
    """Return whether ``exc`` may go away by itself: the lifecycle's transient errors,
    and the broker's (a retry sent while Redis restarts)."""
    return is_transient(exc) or isinstance(exc, BrokerError)


def _backoff(retries: int) -> float:
    delay = min(conf.retry_backoff() * 2**retries, conf.retry_backoff_max())
    return delay * random.uniform(0.8, 1.2)  # jitter spreads a herd of retries

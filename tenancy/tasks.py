"""Celery tasks: thin adapters over :mod:`tenancy.lifecycle`.

Defined with ``shared_task`` so the host project's Celery app picks them up.
The library sets what at-least-once delivery needs (``acks_late``,
``reject_on_worker_lost``): a task whose worker dies is delivered again, and
the lifecycle functions make a second delivery harmless. Task names are
stable (``tenancy.<name>``) for monitoring.
"""

from __future__ import annotations

import os
import random
import threading
from functools import partial
from typing import Any

from celery import Task, shared_task
from django.db import transaction
from kombu.pools import ProducerPool

from tenancy import conf, lifecycle, logs, pool

logger = logs.get_logger("tenancy.tasks")

TASK_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="tenancy.provision_tenant", **TASK_OPTIONS)
def provision_tenant(self: Task, pk: Any) -> str:
    """Provision one tenant by primary key, retrying transient failures with backoff."""
    return _with_retries(self, lifecycle.provision_tenant, pk)


@shared_task(name="tenancy.drop_tenant", **TASK_OPTIONS)
def drop_tenant(self: Task, tombstone_pk: Any) -> str:
    """Drop a deleted tenant's schema, by the id of its tombstone."""
    # On a final failure the tombstone keeps the error; the reconciler tries again later.
    return _with_retries(self, lambda pk, final: lifecycle.drop_tombstone(pk), tombstone_pk)


@shared_task(name="tenancy.migrate_tenant", **TASK_OPTIONS)
def migrate_tenant(self: Task, pk: Any) -> str:
    """Apply the missing migrations to one tenant's schema."""
    return _with_retries(self, lifecycle.migrate_tenant, pk)


@shared_task(name="tenancy.migrate_tenants", **TASK_OPTIONS)
def migrate_tenants(self: Task, pks: list[Any]) -> dict[str, str]:
    """Migrate a batch of tenants (a fleet rollout sends batches to cut per-task overhead)."""
    with logs.context(task=self.request.id):
        results = lifecycle.migrate_tenants(pks)
    for pk, result in results.items():
        if result == "retry":  # transient: one task per tenant, with its own retries
            dispatch(migrate_tenant, pk)
    return {str(pk): result for pk, result in results.items()}


@shared_task(name="tenancy.migrate_all", **TASK_OPTIONS)
def migrate_all(self: Task) -> int:
    """Send one migrate task per tenant that is not current; return how many."""
    from tenancy import rollout

    return rollout.enqueue_all()


@shared_task(name="tenancy.refill_pool", **TASK_OPTIONS)
def refill_pool(self: Task, database: str = "default") -> int:
    """Build pooled schemas up to ``TENANCY_POOL_SIZE`` on ``database``."""
    return pool.refill(database)


@shared_task(name="tenancy.reconcile", **TASK_OPTIONS)
def reconcile(self: Task, grace: float | None = None) -> str:
    """Re-enqueue stuck work; meant for Celery beat (see the docs)."""
    return str(lifecycle.reconcile(grace=grace))


#: What each task runs when ``TENANCY_EAGER`` is set.
_INLINE = {
    "tenancy.provision_tenant": lifecycle.provision_tenant,
    "tenancy.drop_tenant": lifecycle.drop_tombstone,
    "tenancy.migrate_tenant": lifecycle.migrate_tenant,
    "tenancy.migrate_tenants": lifecycle.migrate_tenants,
    "tenancy.reconcile": lifecycle.reconcile,
    "tenancy.refill_pool": pool.refill,
}


_producer_pools: dict[tuple[Any, ...], ProducerPool] = {}
_producer_pools_lock = threading.Lock()


def _producer_pool(task: Task) -> ProducerPool:
    """Return this process's pool of producers for the task's app and current broker.

    The library's own pool, not the app's: its connections get a bounded connect
    timeout, and the retry policy that kombu writes into a connection's transport
    options at each publish stays out of the host project's connections. It is
    keyed by the settings its connections are made of (broker URL, transport
    options, connect timeout) and the process id, so a changed broker setting or
    a forked worker child gets connections of its own instead of stale or shared
    ones; the key is read from the settings, so a publish builds no connection
    object to find its pool.
    """
    app = task.app
    timeout = conf.publish_connect_timeout()
    broker = app.conf.broker_write_url or app.conf.broker_url
    options = repr(app.conf.broker_transport_options)
    key = (os.getpid(), id(app), broker, options, timeout)
    with _producer_pools_lock:
        pool = _producer_pools.get(key)
        if pool is None:
            # connect_timeout bounds a connect to AMQP, socket_connect_timeout one to Redis.
            connection = app.connection_for_write(
                connect_timeout=timeout, transport_options={"socket_connect_timeout": timeout}
            )
            # The pools of an earlier broker setting (or of a parent process) are left to
            # the garbage collector: closing them could break a publish in another thread.
            _producer_pools.clear()
            limit = app.conf.broker_pool_limit
            pool = _producer_pools[key] = ProducerPool(connection.Pool(limit=limit), limit=limit)
        return pool


def dispatch(task: Task, *args: Any, database: str | None = None) -> bool:
    """Run ``task`` inline (``TENANCY_EAGER``) or send it to the broker.

    A broker that is down never fails or hangs the caller: the error is
    logged, the durable state (pending row, tombstone) stays, and the
    reconciler sends the task again later. Returns whether it was sent or run.
    ``database`` (the tenant's alias) fills ``{database}`` in ``TENANCY_CELERY_QUEUE``,
    so each database server can get its own queue and a bounded number of workers.
    """
    if conf.eager():
        _INLINE[task.name](*args)
        return True
    # retry=True with a bounded policy, never retry=False: kombu copies the policy into
    # the connection's transport options, which is what bounds the reconnection of a
    # connection that failed (Connection.default_channel). With retry=False it falls
    # back to retrying for broker_connection_timeout with 2 s and 4 s sleeps: every
    # signup after the first waited about 6 s while the broker was down.
    options: dict[str, Any] = {"retry": True, "retry_policy": conf.publish_retry_policy()}
    queue = conf.celery_queue()
    if queue:
        options["queue"] = queue.format(database=database or conf.default_database())
    try:
        timeout = task.app.conf.get("broker_pool_acquire_timeout")
        with _producer_pool(task).acquire(block=True, timeout=timeout) as producer:
            task.apply_async(args, producer=producer, **options)
    except Exception:
        logger.warning(
            "could not enqueue %s%r; the reconciler will send it again",
            task.name,
            args,
            exc_info=True,
        )
        return False
    return True


def dispatch_after_commit(task: Task, *args: Any, using: str, database: str | None = None) -> None:
    """Dispatch ``task`` once the current transaction on ``using`` commits."""
    transaction.on_commit(partial(dispatch, task, *args, database=database), using=using)


def _with_retries(task: Task, work: Any, pk: Any) -> Any:
    """Run ``work(pk, final=...)``, retrying transient failures with backoff."""
    final = task.request.retries >= conf.max_retries()
    with logs.context(task=task.request.id):
        try:
            return work(pk, final=final)
        except Exception as exc:
            if final or not lifecycle.is_transient(exc):
                raise
            logger.warning("transient failure, retry %d: %s", task.request.retries + 1, exc)
            raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from exc


def _backoff(retries: int) -> float:
    delay = min(conf.retry_backoff() * 2**retries, conf.retry_backoff_max())
    return delay * random.uniform(0.8, 1.2)  # jitter spreads a herd of retries

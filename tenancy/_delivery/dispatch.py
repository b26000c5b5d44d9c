"""Publishing a Celery task without ever failing or holding the caller.

A signup, a delete or a rollout calls this through the lifecycle's job port
(:mod:`tenancy._primitives.jobs`). A broker that is down costs the caller
at most ``TENANCY_PUBLISH_CONNECT_TIMEOUT``: the error is logged, the durable
state (a pending row, a tombstone) stays, and the reconciler sends the task
again later. With ``TENANCY_EAGER`` the task runs inline through Celery's
``apply()``: the same task code as on a worker, retries included, and its
failure is recorded (on the tenant, the tombstone) and logged, not raised
into the caller, as on a worker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from kombu.pools import ProducerPool

from tenancy._primitives import conf, logs

logger = logs.get_logger("tenancy.tasks")

_producer_pools: dict[tuple[Any, ...], ProducerPool] = {}
_producer_pools_lock = threading.Lock()


def publish(task: Task, args: tuple[Any, ...], *, database: str | None = None) -> bool:
    """Run ``task`` inline (``TENANCY_EAGER``) or send it to the broker; return whether
    it was sent (or run). ``database`` (the tenant's alias) fills ``{database}`` in
    ``TENANCY_CELERY_QUEUE``, so each database server can get its own queue."""
    if conf.eager():
        result = task.apply(args=args)
        if result.failed():
            logger.error("%s%r failed inline (TENANCY_EAGER): %r", task.name, args, result.result)
        return True
    # retry=True with a bounded policy, never retry=False: kombu copies the policy into
    # the connection's transport options, which is what bounds the reconnection of a
    # connection that failed (Connection.default_channel). With retry=False it falls
    # back to retrying for broker_connection_timeout with 2 s and 4 s sleeps: every
    # signup after the first waited about 6 s while the broker was down.
    options: dict[str, Any] = {"retry": True, "retry_policy": conf.publish_retry_policy()}
    queue = queue_for(database)
    if queue:
        options["queue"] = queue
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


#: ``send(args, kwargs, **options)`` of :func:`publisher`: returns whether it was sent.
Send = Callable[..., bool]


@contextmanager
def publisher(task: Task) -> Iterator[Send]:
    """Yield a ``send(args, kwargs, **options)`` that publishes ``task`` on one producer of
    the library's pool (for a fan-out: one connection for many messages), or runs it
    inline with ``TENANCY_EAGER``. A send that fails is logged and returns False; the
    caller counts it."""
    if conf.eager():

        def run(args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> bool:
            result = task.apply(args=args, kwargs=kwargs)
            if result.failed():
                logger.error("%s failed inline (TENANCY_EAGER): %r", task.name, result.result)
            return True

        yield run
        return
    policy: dict[str, Any] = {"retry": True, "retry_policy": conf.publish_retry_policy()}
    timeout = task.app.conf.get("broker_pool_acquire_timeout")
    with _producer_pool(task).acquire(block=True, timeout=timeout) as producer:

        def send(args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> bool:
            try:
                task.apply_async(args, kwargs, producer=producer, **policy, **options)
            except Exception:
                logger.warning("could not enqueue %s", task.name, exc_info=True)
                return False
            return True

        yield send


def queue_for(database: str | None) -> str | None:
    """Return the queue of the work about a tenant on ``database`` (None: the default)."""
    queue = conf.celery_queue()
    return queue.format(database=database or conf.default_database()) if queue else None


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


def reset() -> None:
    """Forget the producer pools (tests that switch brokers)."""
    with _producer_pools_lock:
        _producer_pools.clear()

"""Per-tenant locks, so two deliveries of a task on one tenant never run together.

On PostgreSQL a session-level advisory lock on the shared database: it dies
with the connection, so a killed worker or a terminated backend frees it,
and the reconciler can tell a tenant that no worker holds. Other backends
(the embedded SQLite default) get an in-process lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections

#: First key of the library's two-key advisory locks ("tenancy" on a phone pad).
LOCK_NAMESPACE = 8362629

_local_locks: dict[str, threading.RLock] = {}
_local_guard = threading.Lock()


@contextmanager
def tenant_lock(schema: str, using: str, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the lock of ``schema`` for the block; yield whether it was acquired.

    Waits up to ``wait`` seconds for another holder to let go.
    """
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        acquired = _try_acquire(schema, using)
        if acquired or time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    try:
        yield acquired
    finally:
        if acquired:
            _release(schema, using)


def is_locked(schema: str, using: str) -> bool:
    """Return whether some worker holds the lock of ``schema`` right now."""
    if not _try_acquire(schema, using):
        return True
    _release(schema, using)
    return False


def _try_acquire(schema: str, using: str) -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        with _local_guard:
            lock = _local_locks.setdefault(schema, threading.RLock())
        return lock.acquire(blocking=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LOCK_NAMESPACE, schema])
        return bool(cursor.fetchone()[0])


def _release(schema: str, using: str) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        _local_locks[schema].release()
        return
    if connection.connection is None:
        return  # the connection died, and the lock with it
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [LOCK_NAMESPACE, schema])
    except DatabaseError:
        pass  # a broken connection has released the lock already

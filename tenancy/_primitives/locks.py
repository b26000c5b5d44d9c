"""Per-tenant locks that hold through connection poolers and die with their holder.

On PostgreSQL a lock is a *transaction-level* advisory lock, taken in a
transaction that stays open for as long as the work runs, on a connection of
the lock's own (never Django's, whose transactions the work commits as it
goes). Nothing about it is session state:

- behind PgBouncer in transaction mode the open transaction pins one server
  connection, so the lock is held where it was taken and released by the
  transaction's end (a session-level lock would stay behind on a pooled server
  connection, and its unlock would run on another one);
- a holder that dies (``kill -9``, a lost host) takes its connection, and so
  its transaction and its lock, with it; the reconciler tells "stuck" from
  "busy" by looking for the lock in ``pg_locks``;
- the transaction sets ``idle_in_transaction_session_timeout`` to 0 for itself
  (``SET LOCAL``), so a server-wide timeout cannot end a long migration's lock.

Lock connections live as long as Django's own would: with ``CONN_MAX_AGE = 0``
(Django's default) each one is closed when its lock is released, unless the
lock is taken inside :func:`reusing` (a batch of tenants migrated one after
another: a connection costs milliseconds to open, the lock a fraction of one);
with a longer age, idle ones are kept (at most :data:`MAX_IDLE` per alias) and
reused until they are that old.

Other backends (the embedded SQLite default) get in-process locks. A thread
that holds a lock may take it again (the locks are re-entrant per thread).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from django.db import connections

from tenancy.exceptions import LockLost

#: Idle lock connections kept per database alias and process.
MAX_IDLE = 4

#: Idle lock connections per (process id, alias), with the time each was opened.
_idle: dict[tuple[int, str], list[tuple[Any, float]]] = {}
#: Connections inherited from a parent process: kept referenced, never used or closed
#: (closing one would end the parent's connection to the server).
_inherited: list[Any] = []
_idle_guard = threading.Lock()

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()
_held = threading.local()


def key_id(name: str) -> int:
    """Return the 64-bit advisory lock key of ``name`` (signed, as PostgreSQL's bigint)."""
    digest = hashlib.blake2b(b"tenancy:" + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Held:
    """A lock this thread holds; :meth:`ensure` says whether it is still held."""

    def __init__(self, name: str, using: str, raw: Any = None) -> None:
        self.name, self.using, self.raw = name, using, raw

    def alive(self) -> bool:
        """Return whether the lock's transaction still stands (one round trip)."""
        if self.raw is None:
            return True
        try:
            with self.raw.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception:  # the driver's own errors: the connection is gone
            return False
        return True

    def ensure(self) -> None:
        """Raise :class:`LockLost` if the lock died (its connection was lost)."""
        if not self.alive():
            raise LockLost(self.name)


@contextmanager
def hold(name: str, using: str, *, wait: float = 0.0) -> Iterator[Held | None]:
    """Hold the lock ``name`` on the database ``using`` for the block.

    Yields the :class:`Held` lock, or None when another holder kept it for
    ``wait`` seconds.
    """
    held: dict[str, Held] = _held.__dict__.setdefault("locks", {})
    mine = held.get(name)
    if mine is not None:  # taken again by its holder: the outer block releases it
        yield mine
        return
    if connections[using].vendor != "postgresql":
        acquired = _hold_local(name, wait)
    else:
        acquired = _hold_advisory(name, using, wait)
    if acquired is None:
        yield None
        return
    held[name] = acquired
    try:
        yield acquired
    finally:
        del held[name]
        _release(acquired)


@contextmanager
def reusing() -> Iterator[None]:
    """Keep lock connections open for reuse during the block, whatever ``CONN_MAX_AGE``.

    At the end of the outermost block, idle ones are closed again where
    ``CONN_MAX_AGE`` is 0.
    """
    depth = getattr(_held, "reusing", 0)
    _held.reusing = depth + 1
    try:
        yield
    finally:
        _held.reusing = depth
        if not depth:
            _close_short_lived()


def is_held(name: str, using: str) -> bool:
    """Return whether some process holds the lock ``name`` right now."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        lock = _local_locks.get(name)
        return lock is not None and lock.locked()
    key = key_id(name) & 0xFFFFFFFFFFFFFFFF
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s AND objsubid = 1)",
            [key >> 32, key & 0xFFFFFFFF],
        )
        return bool(cursor.fetchone()[0])


def held_among(names: list[str], using: str) -> set[str]:
    """Return which of ``names`` some process holds right now (one query on PostgreSQL)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return {name for name in names if is_held(name, using)}
    if not names:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        taken = {(int(classid) << 32) | int(objid) for classid, objid in cursor.fetchall()}
    return {name for name in names if key_id(name) & 0xFFFFFFFFFFFFFFFF in taken}


def queue_for(cursor: Any, name: str) -> None:
    """Wait for and take the lock ``name`` until the cursor's transaction ends.

    For steps that are one transaction anyway (building one schema): two
    builders of the same name queue here instead of racing.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key_id(name)])


# -- PostgreSQL: a held transaction on a connection of the lock's own --


def _hold_advisory(name: str, using: str, wait: float) -> Held | None:
    deadline = time.monotonic() + wait
    delay = 0.01
    raw = _begin(using)
    try:
        while True:
            with raw.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key_id(name)])
                if cursor.fetchone()[0]:
                    return Held(name, using, raw)
            if time.monotonic() >= deadline:
                _checkin(using, raw)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
    except BaseException:
        _discard(raw)
        raise


def _begin(using: str) -> Any:
    """Return a lock connection of ``using`` inside a new transaction.

    An idle connection is reused; one the server dropped meanwhile (a restart)
    is replaced once.
    """
    for attempt in range(2):
        raw = _checkout(using)
        try:
            with connections[using].wrap_database_errors, raw.cursor() as cursor:
                cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                cursor.execute(
                    "SELECT set_config('application_name', %s, true)",
                    [f"tenancy lock (pid {os.getpid()})"],
                )
            return raw
        except Exception:
            _discard(raw)
            if attempt:
                raise
    raise AssertionError("unreachable")


def _checkout(using: str) -> Any:
    key = (os.getpid(), using)
    max_age = connections[using].settings_dict.get("CONN_MAX_AGE", 0)
    with _idle_guard:
        _forget_inherited()
        idle = _idle.setdefault(key, [])
        reusing = getattr(_held, "reusing", 0)
        while idle:
            raw, born = idle.pop()
            if max_age is None or reusing or time.monotonic() - born < max_age:
                _born[id(raw)] = born
                return raw
            _discard(raw)
    connection = connections[using]
    with connection.wrap_database_errors:
        raw = connection.get_new_connection(connection.get_connection_params())
    raw.autocommit = False
    _born[id(raw)] = time.monotonic()
    return raw


#: When each lock connection in use was opened, by ``id()``.
_born: dict[int, float] = {}


def _checkin(using: str, raw: Any) -> None:
    born = _born.pop(id(raw), time.monotonic())
    max_age = connections[using].settings_dict.get("CONN_MAX_AGE", 0)
    try:
        raw.rollback()
    except Exception:
        _discard(raw)
        return
    if max_age == 0 and not getattr(_held, "reusing", 0):
        _discard(raw)
        return
    with _idle_guard:
        idle = _idle.setdefault((os.getpid(), using), [])
        if len(idle) < MAX_IDLE:
            idle.append((raw, born))
            return
    _discard(raw)


def _close_short_lived() -> None:
    """Close the idle lock connections of aliases whose ``CONN_MAX_AGE`` is 0."""
    pid = os.getpid()
    with _idle_guard:
        keys = [
            key
            for key in _idle
            if key[0] == pid and connections[key[1]].settings_dict.get("CONN_MAX_AGE", 0) == 0
        ]
        idle = [raw for key in keys for raw, _ in _idle.pop(key)]
    for raw in idle:
        _discard(raw)


def close_idle() -> None:
    """Close every idle lock connection of this process (before dropping a database)."""
    pid = os.getpid()
    with _idle_guard:
        idle = [raw for key in [k for k in _idle if k[0] == pid] for raw, _ in _idle.pop(key)]
    for raw in idle:
        _discard(raw)


def _discard(raw: Any) -> None:
    _born.pop(id(raw), None)
    with suppress(Exception):
        raw.close()


def _forget_inherited() -> None:
    pid = os.getpid()
    for key in [k for k in _idle if k[0] != pid]:
        _inherited.extend(raw for raw, _ in _idle.pop(key))


def _release(held: Held) -> None:
    if held.raw is None:
        _local_locks[held.name].release()
        return
    _checkin(held.using, held.raw)


# -- other backends: in-process locks --


def _hold_local(name: str, wait: float) -> Held | None:
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    acquired = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
    return Held(name, "") if acquired else None

"""Tell waiting processes that a tenant changed state, the moment it commits.

On PostgreSQL the worker sends ``NOTIFY`` in the transaction that marks the
tenant ready or failed, and PostgreSQL delivers it at commit; a waiter
listening on the channel wakes within milliseconds. Elsewhere, and as a
safety net, waiters poll. Async waiters (``await_until_ready()``) always poll,
sleeping with ``asyncio.sleep()``: a ``LISTEN`` would need a connection of
their own held, and read, for the whole wait.

``LISTEN`` is session state: behind a pooler in transaction mode (PgBouncer)
the registration stays on a pooled server connection, the notifications go
to whichever client holds it next, and the waiter never gets them. So a
waiter listens only where that cannot happen (``TENANCY_LISTEN``, by default
detected per database: not when the alias sets Django's
``DISABLE_SERVER_SIDE_CURSORS``, which transaction pooling requires, nor when
the server sees the connection come from another port than the one this
process connected from, i.e. through a proxy); else it polls.

Both of Django's PostgreSQL drivers work: psycopg 3 reads notifications with
``notifies()``, psycopg2 with ``poll()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connections

from tenancy._primitives import conf

logger = logging.getLogger("tenancy.notify")

#: The LISTEN/NOTIFY channel of lifecycle state changes; the payload is the schema.
CHANNEL = "tenancy_lifecycle"
#: Longest sleep between two reads of the state when no notification arrives.
MAX_POLL = 0.5


def send(schema: str, using: str) -> None:
    """Queue a notification for ``schema`` in the current transaction on ``using``."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, schema])


def wait(check: Callable[[], bool], using: str, timeout: float | None, poll: float) -> bool:
    """Call ``check`` until it returns True or ``timeout`` passes; return its last answer.

    Between two calls, sleep until a lifecycle notification arrives on
    ``using`` (PostgreSQL) or ``poll`` seconds pass. A connection that breaks (a
    database restart, a terminated backend) only costs the notifications: the
    wait goes on by polling, and ``check`` reconnects at its next call.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    listener, owned = _listen(using)
    try:
        while True:
            if _check(check, using):
                return True
            remaining = MAX_POLL if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not _sleep(listener, min(remaining, poll if listener is None else MAX_POLL)):
                _forget(listener, owned, using)
                listener = None
    finally:
        if listener is not None:
            _unlisten(listener, owned)


async def async_wait(
    check: Callable[[], bool], using: str, timeout: float | None, poll: float
) -> bool:
    """Await ``check`` (a synchronous callable, run through ``sync_to_async``) until it
    returns True or ``timeout`` passes; return its last answer.

    The event loop runs on between two calls, for ``poll`` seconds each time.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    checked = sync_to_async(_check)
    while True:
        if await checked(check, using):
            return True
        remaining = poll if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(remaining, poll))


#: Whether LISTEN is safe, per (process, alias, host, port).
_listen_safe: dict[tuple[int, str, str, str], bool] = {}


def listen_allowed(using: str, raw: Any = None) -> bool:
    """Return whether waiters may ``LISTEN`` on ``using`` (see the module docstring).

    The detection runs once per process and alias, on ``raw`` (a driver
    connection to ``using``) when given.
    """
    setting = conf.listen()
    if setting is not None:
        return setting
    connection = connections[using]
    if connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        return False
    params = connection.settings_dict
    key = (os.getpid(), using, str(params.get("HOST")), str(params.get("PORT")))
    known = _listen_safe.get(key)
    if known is None and raw is not None:
        known = _listen_safe[key] = not _behind_a_proxy(raw)
        if not known:
            logger.info(
                "waits on database %r poll instead of LISTEN: a connection pooler or proxy "
                "is between this process and PostgreSQL (set TENANCY_LISTEN to decide)",
                using,
            )
    return True if known is None else known


def _behind_a_proxy(raw: Any) -> bool:
    """Return whether the server sees this connection come from another port than ours."""
    try:
        with socket.socket(fileno=os.dup(raw.fileno())) as sock:
            address = sock.getsockname()
        with raw.cursor() as cursor:
            cursor.execute("SELECT inet_client_port()")
            seen = cursor.fetchone()[0]
        if not raw.autocommit:
            raw.rollback()
    except Exception:  # a Unix socket, a closed connection: nothing to compare
        return False
    return seen is not None and isinstance(address, tuple) and int(seen) != int(address[1])


def _check(check: Callable[[], bool], using: str) -> bool:
    """Call ``check``; a lost connection counts as "not yet" (it reconnects next time)."""
    try:
        return check()
    except (OperationalError, InterfaceError):
        connection = connections[using]
        if connection.in_atomic_block:
            raise  # a transaction cannot go on over a new connection
        connection.close()
        return False


def _listen(using: str) -> tuple[Any, bool]:
    """Start listening; return the driver connection and whether it is ours to close.

    Outside a transaction, Django's own connection listens (no connection to
    open, a few milliseconds saved); notifications reach a connection only
    between transactions, so inside one a separate connection listens.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None, False
    try:
        if connection.in_atomic_block:
            raw = connection.get_new_connection(connection.get_connection_params())
            raw.autocommit = True
            owned = True
        else:
            connection.ensure_connection()
            raw, owned = connection.connection, False
        if not listen_allowed(using, raw):
            if owned:
                raw.close()
            return None, False
        with raw.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
    except Exception:  # the driver's own errors too: polling still works
        return None, False
    return raw, owned


def _unlisten(raw: Any, owned: bool) -> None:
    # Stop listening after the wait: a listener that never reads would hold
    # back PostgreSQL's notification queue for every other session.
    with suppress(Exception):
        if owned:
            raw.close()
            return
        with raw.cursor() as cursor:
            cursor.execute(f"UNLISTEN {CHANNEL}")
        if isinstance(raw.notifies, list):  # psycopg2 keeps what it read in a list
            raw.notifies.clear()


def _sleep(listener: Any, seconds: float) -> bool:
    """Sleep until a notification or ``seconds``; return False if the listener broke."""
    if listener is None:
        time.sleep(seconds)
        return True
    try:
        if hasattr(listener, "poll"):  # psycopg2
            ready, _, _ = select.select([listener], [], [], seconds)
            if ready:
                listener.poll()  # a connection closed under it raises here
                listener.notifies.clear()
        else:
            _wait_psycopg(listener, seconds)
    except Exception:  # the driver's own errors (OperationalError...), or a closed socket
        return False
    return not _terminated(listener)


def _wait_psycopg(listener: Any, seconds: float) -> None:
    """Wait on a psycopg 3 connection until a notification or ``seconds``.

    psycopg 3 has no ``poll()``: ``notifies()`` reads the socket (and first
    returns what a query read meanwhile); before 3.2 it takes no timeout, and
    libpq is asked directly after a ``select()``. A broken connection raises.
    """
    try:
        received = listener.notifies(timeout=seconds, stop_after=1)
    except TypeError:  # psycopg < 3.2
        ready, _, _ = select.select([listener.fileno()], [], [], seconds)
        if ready:
            pgconn = listener.pgconn
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                pass
        return
    for _ in received:
        pass


def _terminated(raw: Any) -> bool:
    """Return whether the server said it is closing the connection.

    A terminated backend (``pg_terminate_backend``, a shutdown) first sends a
    FATAL message, which psycopg2 files as a notice without raising; only a
    later read finds the socket closed, and that read would be the next query.
    Nothing can follow a FATAL, so the last notice tells.
    """
    if getattr(raw, "broken", False):  # psycopg 3 says so itself
        return True
    notices = getattr(raw, "notices", None)  # psycopg2
    return bool(notices and str(notices[-1]).startswith("FATAL"))


def _forget(raw: Any, owned: bool, using: str) -> None:
    """Let go of a broken listener.

    Django's own connection (when it was the listener) is closed too: Django
    does not notice a dead connection by itself outside a request, and would
    raise on its next query instead of opening a new connection.
    """
    with suppress(Exception):
        if owned:
            raw.close()
        else:
            connections[using].close()

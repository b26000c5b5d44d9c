"""Tell waiting processes that a tenant changed state, the moment it commits.

On PostgreSQL the worker sends ``NOTIFY`` in the transaction that marks the
tenant ready or failed, and PostgreSQL delivers it at commit; a waiter
listening on the channel wakes within milliseconds. Elsewhere, and as a
safety net, waiters poll.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from django.db import connections

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
    ``using`` (PostgreSQL) or ``poll`` seconds pass. A listening connection that
    breaks (a database restart, a terminated backend) only costs the
    notifications: the wait goes on by polling, and ``check`` reconnects.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    listener, owned = _listen(using)
    try:
        while True:
            if check():
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
        raw.notifies.clear()


def _sleep(listener: Any, seconds: float) -> bool:
    """Sleep until a notification or ``seconds``; return False if the listener broke."""
    if listener is None:
        time.sleep(seconds)
        return True
    try:
        ready, _, _ = select.select([listener], [], [], seconds)
        if ready:
            listener.poll()  # a connection closed under it raises here
            listener.notifies.clear()
    except Exception:  # the driver's own errors (OperationalError...), or a closed socket
        return False
    return not _terminated(listener)


def _terminated(raw: Any) -> bool:
    """Return whether the server said it is closing the connection.

    A terminated backend (``pg_terminate_backend``, a shutdown) first sends a
    FATAL message, which the driver files as a notice without raising; only a
    later read finds the socket closed, and that read would be the next query.
    Nothing can follow a FATAL, so the last notice tells.
    """
    notices = getattr(raw, "notices", None)
    return bool(notices) and str(notices[-1]).startswith("FATAL")


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

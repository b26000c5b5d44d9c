"""Writing a tenant's state: compare-and-set moves of the state machine.

Every state change of a tenant goes through :func:`advance`, an ``UPDATE``
conditional on the tenant's incarnation and on the states the move may come
from (:mod:`tenancy._primitives.states`). A duplicated or late task, a
retry racing a worker, a delete racing a build: whichever loses finds its
``UPDATE`` matched nothing and stops, instead of overwriting a newer state.
Waiters are woken by a notification in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from tenancy._primitives import logs, notify, shared
from tenancy._primitives.states import (
    FAILED,
    PROVISIONING,
    READY,
    sources,
)
from tenancy.exceptions import LockLost

logger = logs.get_logger("tenancy.lifecycle")

#: Errors worth a retry: the database was unreachable for a moment, a lock was lost.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    LockLost,
)


def is_transient(exc: BaseException | None) -> bool:
    """Return whether ``exc`` (or an error it wraps) may go away by itself."""
    while exc is not None:
        if isinstance(exc, TRANSIENT_ERRORS):
            return True
        exc = getattr(exc, "error", None) or exc.__cause__
    return False


def advance(
    tenant: Any,
    to: str,
    error: str = "",
    *,
    expect: Iterable[str] | None = None,
    **fields: Any,
) -> bool:
    """Move ``tenant`` to the state ``to``; return whether its row allowed it.

    The ``UPDATE`` matches only the same incarnation in one of the states
    ``expect`` (default: every state the machine allows ``to`` from); on a
    match the instance is updated too, and waiters are notified at commit.
    """
    allowed = sources(to) if expect is None else frozenset(expect) & sources(to)
    alias = shared.database()
    now = timezone.now()
    with transaction.atomic(using=alias):
        updated = (
            type(tenant)
            ._default_manager.using(alias)
            .filter(pk=tenant.pk, incarnation=tenant.incarnation, state__in=allowed)
            .update(state=to, last_error=error, state_changed_at=now, **fields)
        )
        if updated:
            notify.send(tenant.db_schema or "", alias)
    if updated:
        tenant.state, tenant.last_error, tenant.state_changed_at = to, error, now
        for name, value in fields.items():
            setattr(tenant, name, value)
    return bool(updated)


def record_failure(tenant: Any, exc: BaseException, *, final: bool, migrating: bool) -> bool:
    """Keep ``exc`` on the tenant: ``failed`` when ``final``, else the state it had.

    A failed migration left the schema as it was, so until its retry the
    tenant stays ready (usable); a failed build stays provisioning. Returns
    whether the error was recorded (the database may be the thing that failed).
    """
    error = describe(exc)
    keep = READY if migrating else PROVISIONING
    to = FAILED if final else keep
    expect = (READY, FAILED) if migrating else None
    try:
        recorded = advance(tenant, to, error, expect=expect)
    except DatabaseError:
        logger.warning("could not record the failure: the database is unreachable")
        return False
    log = logger.error if final else logger.warning
    what = "migration" if migrating else "provisioning"
    log("%s failed%s: %s", what, "" if final else " (will retry)", error)
    return recorded


def describe(exc: BaseException) -> str:
    """Return the one-line form of an error kept on a tenant or tombstone."""
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def about(tenant: Any) -> Any:
    """Bind the tenant to every log line of the block."""
    key = tenant.natural_key()
    name = key[0] if len(key) == 1 else key
    return logs.context(tenant=name, schema=tenant.db_schema, database=tenant.database)


def send_robust(signal: Any, **kwargs: Any) -> None:
    """Send a lifecycle signal; a failing receiver is logged and changes nothing."""
    for receiver, result in signal.send_robust(**kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %r of %s failed", receiver, signal, exc_info=result)


def load(model: Any, pk: Any) -> Any:
    """Return the tenant row ``pk`` from the shared database, or None."""
    return model._default_manager.using(shared.database()).filter(pk=pk).first()

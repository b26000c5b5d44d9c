"""Sending lifecycle work: a port that the delivery layer plugs into.

The lifecycle decides *what* must run next (provision this tenant, drop that
tombstone, migrate these tenants); how it reaches a process is not its
business. ``tenancy.tasks`` installs a sender that publishes Celery tasks (or,
with ``TENANCY_EAGER``, runs the same task code inline) when the app is
ready; tests and scripts may install their own.

A sender never raises and never blocks its caller for long: it returns
whether the work was sent. The durable state (a pending row, a tombstone, an
operation record) is the intent; the reconciler sends again whatever a lost
message left undone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

#: Job names, one per lifecycle task.
PROVISION = "provision"
DROP = "drop"
MIGRATE = "migrate"
MIGRATE_BATCH = "migrate_batch"
REFILL_POOL = "refill_pool"
RECONCILE = "reconcile"
NAMES = frozenset({PROVISION, DROP, MIGRATE, MIGRATE_BATCH, REFILL_POOL, RECONCILE})


class Job(NamedTuple):
    """One piece of work: its name, its arguments (ids, never instances) and the
    database alias of the tenant it is about (for per-database queues)."""

    name: str
    args: tuple[Any, ...]
    database: str | None = None


Sender = Callable[[Job], bool]

_sender: Sender | None = None


def install(sender: Sender | None) -> Sender | None:
    """Make ``sender`` the way work is sent; return the previous one."""
    global _sender
    previous, _sender = _sender, sender
    return previous


def send(name: str, *args: Any, database: str | None = None) -> bool:
    """Send the job ``name`` now; return whether it was sent (or run)."""
    if name not in NAMES:
        raise ValueError(f"unknown job {name!r}")
    if _sender is None:
        raise ImproperlyConfigured(
            "No way to send lifecycle work is installed: add 'tenancy' to INSTALLED_APPS "
            "(its AppConfig installs the Celery sender of tenancy.tasks)."
        )
    return _sender(Job(name, args, database))


def send_after_commit(name: str, *args: Any, using: str, database: str | None = None) -> None:
    """Send the job once the current transaction on ``using`` commits."""
    transaction.on_commit(partial(send, name, *args, database=database), using=using)

"""The tenant state machine: the states, the moves between them, and what they imply.

Every caller (the lifecycle, the rollout, the admin, the status command, the
class cache) asks this module what a state means, so that "current",
"behind", "not built yet" and "held by a worker" have one definition each.

A state change is a compare-and-set: :func:`sources` gives the states a
tenant may be in for a move to be allowed, and the writer's ``UPDATE`` is
conditional on them, so a late or duplicated task can never undo a newer
state (a redelivered provisioning cannot turn a ready tenant into a failed
one).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.db import models
from django.db.models import Q

from tenancy._primitives import locks


class TenantState(models.TextChoices):
    """Where a tenant is in its lifecycle."""

    PENDING = "pending", "pending"
    PROVISIONING = "provisioning", "provisioning"
    READY = "ready", "ready"
    FAILED = "failed", "failed"


PENDING, PROVISIONING, READY, FAILED = (
    TenantState.PENDING,
    TenantState.PROVISIONING,
    TenantState.READY,
    TenantState.FAILED,
)

#: The moves allowed, as ``{to: states it may come from}``.
#:
#: - pending -> provisioning: a worker starts building it;
#: - pending/provisioning -> ready: built (a pooled schema skips "provisioning");
#: - pending/provisioning -> failed: building failed for good (or the key names no schema);
#: - provisioning/failed -> pending: retried (ready -> pending: rebuilt after its schema
#:   went missing, by drift repair only);
#: - ready/failed -> ready: migrated (a failed migration fixed);
#: - ready -> failed: a migration failed for good (the schema is as it was before it).
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PENDING, PROVISIONING, FAILED, READY}),
    PROVISIONING: frozenset({PENDING, PROVISIONING}),
    READY: frozenset({PENDING, PROVISIONING, READY, FAILED}),
    FAILED: frozenset({PENDING, PROVISIONING, READY, FAILED}),
}

#: States whose storage is not built yet: provisioning builds the current migrations.
UNBUILT: tuple[str, ...] = (PENDING, PROVISIONING)
#: States from which a retry starts provisioning over.
RETRYABLE: tuple[str, ...] = (FAILED, PENDING, PROVISIONING)


def sources(to: str) -> frozenset[str]:
    """Return the states from which a tenant may move to ``to``."""
    return TRANSITIONS[to]


def allowed(source: str, to: str) -> bool:
    """Return whether a tenant in ``source`` may move to ``to``."""
    return source in TRANSITIONS[to]


def is_built(state: str) -> bool:
    """Return whether a tenant in ``state`` has had its storage built at some point."""
    return state not in UNBUILT


def is_current(state: str, digest: str, plan_digest: str) -> bool:
    """Return whether a tenant is ready at the current migrations (``plan_digest``)."""
    return state == READY and digest == plan_digest


def is_behind(state: str, digest: str, plan_digest: str) -> bool:
    """Return whether a built tenant needs ``tenancy_migrate`` (not current, or failed)."""
    return state == FAILED or (state == READY and digest != plan_digest)


def lacks_migrations(digest: str, applied: int, plan_digest: str, plan_size: int) -> bool:
    """Return whether a built tenant's schema is older than the running code's migrations.

    True when it is not at the plan's digest and has no more migrations applied
    than the plan holds; a tenant with more was migrated by newer code (a web
    process still on the old release, during a rolling deploy), and is not older.
    """
    return digest != plan_digest and applied <= plan_size


def behind(plan_digest: str) -> Q:
    """Return the filter of the tenants :func:`is_behind` is true for, in one query."""
    return (Q(state=READY) & ~Q(migrations_digest=plan_digest)) | Q(state=FAILED)


def lock_key(incarnation: str) -> str:
    """Return the name of the lock that one tenant incarnation's work holds."""
    return f"tenant:{incarnation}"


def held_by_worker(tenant: Any, using: str) -> bool:
    """Return whether some process is working on ``tenant`` right now (holds its lock).

    ``using`` is the shared database, where the locks are taken.
    """
    incarnation: str | None = getattr(tenant, "incarnation", None)
    return bool(incarnation and locks.is_held(lock_key(incarnation), using))


class Result(StrEnum):
    """What one piece of lifecycle work did (the return value of the tasks)."""

    #: The tenant is ready (built now, or found ready).
    READY = "ready"
    #: The row is gone: deleted before its turn.
    MISSING = "missing"
    #: Another process holds the tenant; it finishes the work.
    BUSY = "busy"
    #: Migrations were applied.
    MIGRATED = "migrated"
    #: Nothing to do: already at the current migrations.
    CURRENT = "current"
    #: Not built yet: provisioning builds the current state.
    SKIPPED = "skipped"
    #: A deleted tenant's storage was dropped.
    DROPPED = "dropped"
    #: A deleted tenant's storage was not ours (any more) or not there: left alone.
    KEPT = "kept"
    #: Nothing left to do (a tombstone already done, an operation finished).
    DONE = "done"
    #: The tenant failed for good; its error is on the row.
    FAILED = "failed"
    #: A transient failure: send the work again.
    RETRY = "retry"
    #: A failure that a retry will not fix, kept on the row.
    ERROR = "error"
    #: This worker runs another version of the migrations than the sender expects.
    WRONG_VERSION = "wrong-version"
    #: An interrupted operation was rolled back.
    UNDONE = "undone"

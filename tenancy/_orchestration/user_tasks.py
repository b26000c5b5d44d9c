"""The projects' own per-tenant tasks: what to do with one, and whom a fan-out reaches.

What a ``tenant_task`` (:mod:`tenancy._delivery.tenant_tasks`) decides, without
Celery: a task carries a :class:`Reference` (the tenant's pk and incarnation,
never the instance); on the worker :func:`decide` reads the row from the
shared database and says whether the user's code may run on it now:

=====================================  ========  ==========================================
the tenant                             verdict   why
=====================================  ========  ==========================================
row missing                            ``GONE``  deleted (its tombstone has the rest)
another incarnation under the pk       ``GONE``  deleted and signed up again: not this tenant
``pending``, ``provisioning``          ``WAIT``  no schema yet; ready in a moment
``ready``, a move not finished         ``WAIT``  its schema refuses writes until the switch
``ready`` (behind or being migrated)   ``RUN``   as ``for_tenant()`` serves it; migrations
                                                 are transactional
``failed``                             ``FAIL``  an operator must act; retrying cannot help
=====================================  ========  ==========================================

``WAIT`` turns into ``FAIL`` once ``TENANCY_TASK_READY_TIMEOUT`` seconds passed since
the task's first attempt. :func:`targets` walks the tenants of a fan-out by keyset
pagination, a chunk at a time, and places each one's countdown over the spread.
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tenancy._orchestration.transitions import load
from tenancy._primitives import conf, shared
from tenancy._primitives.records import TenantOperation
from tenancy._primitives.states import FAILED, READY, UNBUILT, TenantState

#: Tenants read per query by a fan-out.
CHUNK = 1000
#: How a fan-out places countdowns over its spread.
SPREAD_MODES = ("even", "random")
#: SQLSTATE of the error a frozen (moving) schema raises on a write.
READ_ONLY_SQLSTATE = "25006"


class Reference(NamedTuple):
    """What a task carries of its tenant: the pk, and the incarnation when known."""

    pk: Any
    incarnation: str | None = None
    database: str | None = None


def reference(tenant: Any) -> Reference:
    """Return the reference of ``tenant``: an instance of the tenant model or its pk.

    A pk is looked up once (its incarnation and database), so that the task
    is for the tenant that has this pk now, never one signed up under it later.
    """
    if isinstance(tenant, shared.tenant_model()):
        if tenant.pk is None:
            raise ValueError(f"Tenant {tenant!r} is not saved: a tenant task needs its pk.")
        return Reference(tenant.pk, tenant.incarnation, tenant.database)
    if isinstance(tenant, Reference):
        return tenant
    row = shared.tenants().filter(pk=tenant).values_list("incarnation", "database").first()
    return Reference(tenant, *row) if row else Reference(tenant)


class Verdict(StrEnum):
    """What a tenant task does about its tenant."""

    RUN = "run"
    WAIT = "wait"
    GONE = "gone"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    """A verdict, the tenant it is about (None when gone), and why, for the log."""

    verdict: Verdict
    tenant: Any
    reason: str


def decide(ref: Reference, *, waited: float = 0.0) -> Decision:
    """Decide whether a task for ``ref`` runs now; see the module docstring.

    ``waited`` is how many seconds the task has already waited for this tenant.
    """
    tenant = load(shared.tenant_model(), ref.pk)
    if tenant is None:
        return Decision(Verdict.GONE, None, f"tenant {ref.pk!r} was deleted")
    if ref.incarnation is not None and tenant.incarnation != ref.incarnation:
        return Decision(
            Verdict.GONE,
            None,
            f"tenant {ref.pk!r} was deleted (its pk now belongs to another tenant)",
        )
    if tenant.state == FAILED:
        return Decision(Verdict.FAIL, tenant, tenant.last_error or "provisioning failed")
    if tenant.state in UNBUILT:
        reason = f"tenant is {tenant.state}"
    elif tenant.state == READY and moving(tenant):
        reason = "tenant is moving to another database"
    else:
        return Decision(Verdict.RUN, tenant, "ready")
    timeout = conf.task_ready_timeout()
    if waited >= timeout:
        reason += f", still after {waited:.0f} s (TENANCY_TASK_READY_TIMEOUT)"
        return Decision(Verdict.FAIL, tenant, reason)
    return Decision(Verdict.WAIT, tenant, reason)


def moving(tenant: Any) -> bool:
    """Return whether a move of ``tenant`` is under way (its schema refuses writes)."""
    if not tenant.incarnation:
        return False
    unfinished = TenantOperation.objects.using(shared.database()).filter(
        incarnation=tenant.incarnation, finished_at__isnull=True
    )
    return bool(unfinished.exists())


def gone(ref: Reference) -> bool:
    """Return whether the tenant of ``ref`` no longer exists (deleted while a task ran)."""
    row = shared.tenants().filter(pk=ref.pk).values_list("incarnation", flat=True)
    incarnations = list(row)
    return not incarnations or (ref.incarnation is not None and incarnations[0] != ref.incarnation)


def refused_while_moving(exc: BaseException | None) -> bool:
    """Return whether ``exc`` is the write refusal of a schema that is being moved.

    The SQLSTATE is ``pgcode`` on psycopg2's errors and ``sqlstate`` on psycopg 3's.
    """
    while exc is not None:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code == READ_ONLY_SQLSTATE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def wait_delay(attempt: int, remaining: float) -> float:
    """Return the seconds before re-checking a tenant: 1, 2, 4 ... 30, with jitter, and
    never past the end of the wait."""
    delay = min(2.0**attempt, 30.0) * random.uniform(0.8, 1.2)
    return max(0.0, min(delay, remaining))


def now() -> float:
    """Return the clock waits are measured on (seconds since the epoch)."""
    return time.time()


# -- fan-out --


class Target(NamedTuple):
    """One task of a fan-out: its tenant and its countdown (seconds)."""

    ref: Reference
    countdown: float


def check_states(states: Iterable[str]) -> tuple[str, ...]:
    """Return ``states`` as a tuple, refusing a name that is not a tenant state."""
    chosen = (states,) if isinstance(states, str) else tuple(states)
    unknown = [s for s in chosen if s not in TenantState.values]
    if unknown or not chosen:
        names = ", ".join(TenantState.values)
        raise ValueError(f"states must name tenant states ({names}), not {unknown or chosen!r}.")
    return chosen


def targets(
    states: Sequence[str] = (READY,),
    queryset: Any = None,
    *,
    spread: float = 0,
    mode: str = "even",
    chunk: int | None = None,
    rng: random.Random | None = None,
) -> Iterator[Target]:
    """Yield one :class:`Target` per tenant of ``queryset`` (default: all) in ``states``.

    Reads ``chunk`` pks at a time, in pk order (keyset pagination: never all
    the rows at once, and a tenant added or deleted meanwhile moves no page).
    ``spread`` seconds are cut into as many equal slots as there are tenants:
    ``"even"`` puts each task at a random point of its own slot (so no two
    share a second where the spread allows, and a herd does not form at slot
    edges), ``"random"`` anywhere in the spread.
    """
    if mode not in SPREAD_MODES:
        raise ValueError(f"spread_mode must be one of {SPREAD_MODES}, not {mode!r}.")
    if isinstance(spread, bool) or not isinstance(spread, int | float) or spread < 0:
        raise ValueError(f"spread must be a number of seconds (>= 0), not {spread!r}.")
    chunk = chunk or CHUNK
    rows = _rows(queryset).filter(state__in=check_states(states))
    total = rows.count() if spread else 0
    rng = rng or random.Random()
    index = 0
    for batch in _keyset(rows, chunk):
        for pk, incarnation, database in batch:
            countdown = 0.0
            if spread:
                slot = spread / max(total, 1)
                countdown = (
                    min(index, max(total - 1, 0)) * slot + rng.uniform(0, slot)
                    if mode == "even"
                    else rng.uniform(0, spread)
                )
                countdown = min(countdown, float(spread))
            yield Target(Reference(pk, incarnation, database), round(countdown, 3))
            index += 1


def _rows(queryset: Any) -> Any:
    if queryset is None:
        return shared.tenants()
    if queryset.model is not shared.tenant_model():
        raise TypeError(
            f"queryset must be of the tenant model {shared.tenant_model().__name__}, not of "
            f"{queryset.model.__name__}."
        )
    if queryset.query.is_sliced:
        raise TypeError("queryset must not be sliced: a fan-out pages through it by pk.")
    return queryset


def _keyset(rows: Any, chunk: int) -> Iterator[list[tuple[Any, str | None, str]]]:
    """Yield the (pk, incarnation, database) of ``rows`` in pk order, ``chunk`` at a time."""
    page = rows.order_by("pk").values_list("pk", "incarnation", "database")
    last = None
    while True:
        batch = list((page if last is None else page.filter(pk__gt=last))[:chunk])
        if not batch:
            return
        yield batch
        if len(batch) < chunk:
            return
        last = batch[-1][0]


# -- tenants' own time zones --


def zones_at_local_hour(
    zones: Iterable[str], hour: int, at: datetime.datetime | None = None
) -> list[str]:
    """Return the time zone names of ``zones`` where the local hour is ``hour`` at ``at``
    (default now); a name that is no time zone is left out."""
    moment = at or datetime.datetime.now(datetime.UTC)
    chosen = []
    for zone in zones:
        try:
            if zone and moment.astimezone(ZoneInfo(zone)).hour == hour:
                chosen.append(zone)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return chosen


def at_local_hour(
    hour: int,
    *,
    field: str = "timezone",
    queryset: Any = None,
    at: datetime.datetime | None = None,
) -> Any:
    """Return the tenants (of ``queryset``, default all) whose local time is ``hour``
    o'clock now, by the time zone name in their ``field``.

    Run hourly (``crontab(minute=0)``), each tenant is chosen once a day, at
    ``hour`` its local time (a zone half an hour off, at half past).
    """
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0 to 23, not {hour!r}.")
    rows = _rows(queryset)
    zones = rows.order_by().values_list(field, flat=True).distinct()
    return rows.filter(**{f"{field}__in": zones_at_local_hour(zones, hour, at)})

"""The projects' own per-tenant Celery tasks: ``@tenant_task`` and ``for_each_tenant()``.

A thin adapter over :mod:`tenancy._orchestration.user_tasks`, which decides
everything: this module turns a tenant into the message's first argument (its
pk; the incarnation travels in the reserved keyword ``_tenancy``), sends after
commit, and maps the decision on the worker to Celery: run the function, retry
later, end, or raise ``TenantNotReady``. See docs/tasks.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Retry
from celery.utils import uuid
from django.db import transaction
from django.utils.module_loading import import_string

from tenancy._delivery import dispatch
from tenancy._orchestration import user_tasks
from tenancy._orchestration.transitions import about
from tenancy._orchestration.user_tasks import Reference, Verdict
from tenancy._primitives import conf, logs, shared
from tenancy._primitives.states import READY
from tenancy.exceptions import TenantNotReady

logger = logs.get_logger("tenancy.tasks")

#: The reserved keyword argument of a tenant task's message: what it knows of its tenant.
META = "_tenancy"
#: ``@tenant_task(queue=TENANT_DATABASE_QUEUE)``: send each task to the lifecycle's
#: queue of its tenant's database (``TENANCY_CELERY_QUEUE`` with ``{database}`` filled).
TENANT_DATABASE_QUEUE = "tenancy:tenant-database"
#: Consecutive failed sends after which a fan-out stops (the broker is down).
MAX_CONSECUTIVE_FAILURES = 10


class TenantTask(Task):
    """A Celery task whose first argument is a tenant: sent as its pk, loaded on the worker.

    The worker runs the function only on a ready tenant of the incarnation it
    was sent for; see :mod:`tenancy._orchestration.user_tasks` for each state.
    """

    #: The queue template: None, :data:`TENANT_DATABASE_QUEUE`, or a name with ``{database}``.
    tenancy_queue: str | None = None
    #: Celery's own check of the arguments would refuse the reserved ``_tenancy``
    #: keyword; :meth:`apply_async` checks the caller's arguments instead.
    typing = False
    #: Whether :meth:`apply_async` checks the arguments (the ``typing`` option).
    tenancy_typing = True

    def apply_async(  # type: ignore[override]
        self,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send the task with its tenant's pk; after commit when in a transaction on the
        shared database (the returned result's id is the id the message will have)."""
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        if META in kwargs:  # a retry, or a fan-out's message: already about its tenant
            return super().apply_async(args, kwargs, **options)
        if not args:
            raise TypeError(f"{self.name}() takes the tenant (an instance or its pk) first.")
        header = getattr(self, "__header__", None)
        if header is not None and self.tenancy_typing:
            try:
                header(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.name}{exc}") from None
        ref = user_tasks.reference(args[0])
        args, kwargs[META] = (ref.pk, *args[1:]), {"incarnation": ref.incarnation}
        queue = self.queue_of(ref.database)
        if queue and "queue" not in options:
            options["queue"] = queue
        send: Callable[..., Any] = partial(super().apply_async, args, kwargs)
        if conf.eager():
            send = partial(self.apply, args, kwargs)
        alias = shared.database()
        if transaction.get_connection(alias).in_atomic_block:
            task_id = options.setdefault("task_id", uuid())
            transaction.on_commit(partial(send, **options), using=alias)
            return self.AsyncResult(task_id)
        return send(**options)

    def queue_of(self, database: str | None) -> str | None:
        """Return the queue of this task for a tenant on ``database`` (None: the task's own)."""
        template = self.tenancy_queue
        if template == TENANT_DATABASE_QUEUE:
            return dispatch.queue_for(database)
        if template:
            return template.format(database=database or conf.default_database())
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        meta = kwargs.pop(META, None)
        if not args:
            raise TypeError(f"{self.name}() takes the tenant (an instance or its pk) first.")
        ref = Reference(args[0], meta.get("incarnation")) if meta else user_tasks.reference(args[0])
        meta = dict(meta or {"incarnation": ref.incarnation})
        since = meta.get("waiting_since")
        waited = user_tasks.now() - since if since else 0.0
        decision = user_tasks.decide(ref, waited=waited)
        tenant = decision.tenant
        scope = about(tenant) if tenant is not None else logs.context(tenant=ref.pk)
        with logs.context(task=self.request.id), scope:
            if decision.verdict == Verdict.GONE:
                logger.info("%s: %s; the task ends", self.name, decision.reason)
                return None
            if decision.verdict == Verdict.FAIL:
                raise TenantNotReady(tenant, tenant.state, decision.reason)
            if decision.verdict == Verdict.WAIT:
                raise self._wait(tenant, ref, args, kwargs, meta, waited, decision.reason)
            try:
                return self.run(tenant, *args[1:], **kwargs)
            except Retry:
                raise
            except Exception as exc:
                if user_tasks.refused_while_moving(exc):
                    raise self._wait(
                        tenant, ref, args, kwargs, meta, waited, "tenant is moving"
                    ) from exc
                if _gone(ref):
                    logger.info("%s: tenant was deleted while the task ran; it ends", self.name)
                    return None
                raise

    def _wait(
        self,
        tenant: Any,
        ref: Reference,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        meta: dict[str, Any],
        waited: float,
        reason: str,
    ) -> BaseException:
        """Return the Retry that checks the tenant again later (TenantNotReady inline)."""
        request = self.request
        if request.called_directly or request.is_eager:
            # Inline, nothing can make the tenant ready while the caller waits for it.
            return TenantNotReady(tenant, tenant.state, f"{reason} (the task ran inline)")
        remaining = conf.task_ready_timeout() - waited
        countdown = user_tasks.wait_delay(request.retries, remaining)
        logger.info("%s: %s; checking again in %.1f s", self.name, reason, countdown)
        meta.setdefault("waiting_since", user_tasks.now())
        return self.retry(
            args=(ref.pk, *args[1:]),
            kwargs={**kwargs, META: meta},
            countdown=countdown,
            max_retries=request.retries + 1,  # waits are bounded by time, not a count
        )


def _gone(ref: Reference) -> bool:
    """Return whether ``ref``'s tenant is gone; False if that cannot be read (the task's
    own error is then the one to raise)."""
    try:
        return user_tasks.gone(ref)
    except Exception:
        return False


def tenant_task(
    fun: Callable[..., Any] | None = None, *, queue: str | None = None, **options: Any
) -> Any:
    """Make ``fun(tenant, ...)`` a Celery task sent with its tenant's pk (``shared_task``).

    ``queue`` may be a queue name, a name with ``{database}`` (the tenant's
    database alias) or :data:`TENANT_DATABASE_QUEUE`; every other option is
    Celery's (``max_retries``, ``bind``, ``name``...). Example::

        @tenant_task
        def send_digest(tenant, since):
            ...

        send_digest.delay(customer, since)
    """

    def make(function: Callable[..., Any]) -> Any:
        base = options.pop("base", TenantTask)
        options["tenancy_typing"] = options.pop("typing", True)
        if not issubclass(base, TenantTask):
            base = type(f"Tenant{base.__name__}", (TenantTask, base), {})
        per_tenant = queue == TENANT_DATABASE_QUEUE or (queue and "{database}" in queue)
        extra = {"tenancy_queue": queue} if per_tenant else {"queue": queue} if queue else {}
        return shared_task(base=base, **extra, **options)(function)  # type: ignore[call-overload]

    return make(fun) if fun is not None else make


class FanOut(int):
    """How many tasks a fan-out sent (an int), with ``failed`` and ``skipped`` counts."""

    failed: int
    skipped: bool

    def __new__(cls, sent: int, failed: int = 0, skipped: bool = False) -> FanOut:
        value = super().__new__(cls, sent)
        value.failed, value.skipped = failed, skipped
        return value

    def __repr__(self) -> str:
        return f"FanOut(sent={int(self)}, failed={self.failed}, skipped={self.skipped})"


def for_each_tenant(
    task: Any,
    *args: Any,
    spread: float = 0,
    states: Iterable[str] = (READY,),
    queryset: Any = None,
    spread_mode: str = "even",
    **kwargs: Any,
) -> FanOut:
    """Send ``task(tenant, *args, **kwargs)`` once per tenant in ``states`` (of ``queryset``).

    Returns how many were sent (a :class:`FanOut`, an ``int``). The tenants
    are read a thousand pks at a time; ``spread`` seconds of countdowns are
    placed ``"even"`` (one slot per tenant, a random point in it) or
    ``"random"``. Publishes on the library's producer pool; a failed send is
    logged and counted in ``failed``; after ten in a row the broker is taken
    for down and the rest is not sent (``skipped``). Example::

        for_each_tenant(send_digest, since, spread=600)
    """
    if not isinstance(task, TenantTask):
        raise TypeError(
            f"for_each_tenant() sends tenant tasks (made with @tenant_task), not {task!r}."
        )
    sent = failed = in_a_row = 0
    plan = user_tasks.targets(tuple(states), queryset, spread=spread, mode=spread_mode)
    with dispatch.publisher(task) as send:
        for target in plan:
            ref = target.ref
            options: dict[str, Any] = {}
            if target.countdown:
                options["countdown"] = target.countdown
            queue = task.queue_of(ref.database)
            if queue:
                options["queue"] = queue
            message = {**kwargs, META: {"incarnation": ref.incarnation}}
            if send((ref.pk, *args), message, **options):
                sent, in_a_row = sent + 1, 0
                continue
            failed, in_a_row = failed + 1, in_a_row + 1
            if in_a_row >= MAX_CONSECUTIVE_FAILURES:
                logger.error(
                    "%s: %d sends failed in a row; the broker looks down, the fan-out stops "
                    "(%d sent, the rest not sent)",
                    task.name,
                    in_a_row,
                    sent,
                )
                return FanOut(sent, failed, skipped=True)
    if failed:
        logger.error("%s: %d sent, %d could not be sent", task.name, sent, failed)
    else:
        logger.info("%s: sent to %d tenants", task.name, sent)
    return FanOut(sent, failed)


def named(app: Any, name: str) -> TenantTask:
    """Return the tenant task registered as ``name`` (importing it by its dotted path if
    no module imported it yet); raise ``LookupError`` or ``TypeError`` with the fix."""
    task = app.tasks.get(name)
    if task is None and "." in name:
        with contextlib.suppress(ImportError):
            task = import_string(name)
    if task is None:
        raise LookupError(
            f"No Celery task is named {name!r}: give the name of a @tenant_task (by default "
            "its module's dotted path and the function name, e.g. 'myapp.tasks.send_digest'), "
            "and make sure the worker imports its module (app.autodiscover_tasks())."
        )
    if not isinstance(task, TenantTask):
        raise TypeError(
            f"The task {name!r} is not a tenant task: tenancy.for_each_tenant sends only "
            "tasks made with @tenant_task (their first argument is the tenant)."
        )
    return task

"""The tenant lifecycle as plain functions: provision, drop, retry, reconcile.

Each function is what one Celery task runs (see :mod:`tenancy.tasks`); a
test, a shell or a management command can call it directly. All of them are
safe to run twice or concurrently: a per-tenant lock serialises the work,
every step checks what is already done, and on PostgreSQL a tenant's schema,
tables and ``ready`` state commit in one transaction.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, router, transaction
from django.db.models import F
from django.utils import timezone

from tenancy import (
    conf,
    get_tenant_model,
    locks,
    logs,
    migrator,
    notify,
    pool,
    provisioning,
    signals,
    storage,
)
from tenancy.ddl import ddl_transaction
from tenancy.exceptions import TenancyError
from tenancy.models import AbstractTenant, TenantState, Tombstone

logger = logs.get_logger("tenancy.lifecycle")

#: Errors worth a retry: the database or the broker was unreachable for a moment.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` (or the error it wraps) may go away by itself."""
    from kombu.exceptions import OperationalError as BrokerError

    while exc is not None:
        if isinstance(exc, (*TRANSIENT_ERRORS, BrokerError)):
            return True
        exc = getattr(exc, "error", None) or exc.__cause__  # type: ignore[assignment]
    return False


def shared_database() -> str:
    """Return the alias that holds the tenant rows (and the lifecycle locks)."""
    return router.db_for_write(get_tenant_model())


def provision_tenant(pk: Any, *, final: bool = True) -> str:
    """Provision the tenant ``pk`` and mark it ready; return what happened.

    Returns ``"ready"``, ``"missing"`` (deleted before its turn) or
    ``"busy"`` (another worker holds the tenant). On an error, the tenant is
    marked ``failed`` with the error when ``final`` is true or the error is
    not transient (else it stays to be retried), and the error is raised.
    """
    model = get_tenant_model()
    shared = shared_database()
    tenant = model._default_manager.using(shared).filter(pk=pk).first()
    if tenant is None:
        return "missing"
    if tenant.state == TenantState.READY:
        return "ready"
    if not tenant.db_schema or not tenant.database:
        _name(tenant)
    with _about(tenant):
        return _provision_locked(model, pk, tenant, shared, final=final)


def _provision_locked(
    model: Any, pk: Any, tenant: AbstractTenant, shared: str, *, final: bool
) -> str:
    with locks.tenant_lock(tenant.db_schema, shared, wait=conf.lock_wait()) as acquired:
        if not acquired:
            logger.info("another worker holds this tenant; leaving it to it")
            return "busy"
        tenant = model._default_manager.using(shared).filter(pk=pk).first()
        if tenant is None:
            return "missing"
        if tenant.state == TenantState.READY:
            return "ready"
        started = time.monotonic()
        try:
            _clear_leftovers(tenant.db_schema, tenant.database)
            # A pooled schema is handed out in one short transaction: no
            # "provisioning" state is worth writing for that.
            committed = _build(tenant, shared, pool_only=True)
            if committed is None:
                _set_state(tenant, TenantState.PROVISIONING, tenant.last_error)
                committed = _build(tenant, shared)
        except Exception as exc:
            _record_failure(tenant, exc, final=final or not is_transient(exc))
            raise
    logger.info("provisioned in %.1f ms", (time.monotonic() - started) * 1000)
    if committed:
        _send_robust(signals.tenant_provisioned, sender=model, tenant=tenant)
        return "ready"
    return "missing"


def migrate_tenant(pk: Any, *, final: bool = True) -> str:
    """Bring tenant ``pk``'s schema to the current migrations; return what happened.

    Returns ``"migrated"``, ``"current"`` (nothing to do: one row read, no
    migration graph), ``"skipped"`` (not provisioned yet: provisioning builds
    the current state), ``"missing"`` or ``"busy"``. A failure marks the
    tenant ``failed`` with the migration and the error (nothing of the
    failed migration stays applied) and is raised.
    """
    model = get_tenant_model()
    shared = shared_database()
    tenant = model._default_manager.using(shared).filter(pk=pk).first()
    if tenant is None:
        return "missing"
    if tenant.state in (TenantState.PENDING, TenantState.PROVISIONING):
        return "skipped"
    the_plan = migrator.plan()
    if tenant.state == TenantState.READY and tenant.migrations_digest == the_plan.digest:
        return "current"
    with _about(tenant):
        return _migrate_locked(pk, tenant, shared, the_plan, final=final)


def _migrate_locked(
    pk: Any, tenant: AbstractTenant, shared: str, the_plan: migrator.Plan, *, final: bool
) -> str:
    with locks.tenant_lock(tenant.db_schema, shared, wait=conf.lock_wait()) as acquired:
        if not acquired:
            return "busy"
        tenant.refresh_from_db()
        if tenant.state == TenantState.READY and tenant.migrations_digest == the_plan.digest:
            return "current"
        if not storage.schema_exists(tenant.db_schema, tenant.database):
            # Failed before its storage was built: provisioning builds the current state.
            _set_state(tenant, TenantState.PENDING, tenant.last_error)
            return provision_tenant(pk, final=final)
        started = time.monotonic()
        try:
            same = tenant.database == shared
            with ddl_transaction(shared) if same else contextlib.nullcontext():
                applied = migrator.migrate_schema(tenant.db_schema, tenant.database)
                _set_state(tenant, TenantState.READY, **_migrated(the_plan))
        except Exception as exc:
            _record_failure(tenant, exc, final=final or not is_transient(exc), action="migration")
            raise
    logger.info(
        "migrated: %d migration(s) in %.1f ms", len(applied), (time.monotonic() - started) * 1000
    )
    return "migrated"


def migrate_tenants(pks: list[Any]) -> dict[Any, str]:
    """Migrate several tenants one after another (each in its own transaction).

    A failing tenant keeps its error on its row and the others go on;
    returns each tenant's result (``"error"`` for a failure, ``"retry"`` for a
    transient one that the caller should send again).
    """
    results: dict[Any, str] = {}
    for pk in pks:
        try:
            results[pk] = migrate_tenant(pk, final=False)
        except Exception as exc:
            # A transient failure leaves the tenant as it was, for a retry.
            results[pk] = "retry" if is_transient(exc) else "error"
            logger.warning("migrating tenant %r failed: %s", pk, describe(exc))
    return results


def drop_tombstone(pk: Any) -> str:
    """Drop the schema a tombstone stands for; return ``"dropped"``, ``"kept"``,
    ``"done"`` (nothing left to do) or ``"busy"``."""
    shared = shared_database()
    tomb = Tombstone.objects.using(shared).filter(pk=pk).first()
    if tomb is None or tomb.done_at is not None:
        return "done"
    with logs.context(tenant=tomb.tenant_repr, schema=tomb.schema, database=tomb.database):
        return _drop_locked(pk, tomb, shared)


def _drop_locked(pk: Any, tomb: Tombstone, shared: str) -> str:
    started = time.monotonic()
    with locks.tenant_lock(tomb.schema, shared, wait=conf.lock_wait()) as acquired:
        if not acquired:
            return "busy"
        tomb.refresh_from_db()
        if tomb.done_at is not None:
            return "done"
        Tombstone.objects.using(shared).filter(pk=pk).update(attempts=F("attempts") + 1)
        try:
            dropped = _drop_storage_of(tomb)
        except Exception as exc:
            Tombstone.objects.using(shared).filter(pk=pk).update(last_error=describe(exc))
            raise
        Tombstone.objects.using(shared).filter(pk=pk).update(done_at=timezone.now(), last_error="")
    logger.info(
        "%s in %.1f ms",
        "dropped" if dropped else "nothing to drop",
        (time.monotonic() - started) * 1000,
    )
    if dropped:
        _send_robust(
            signals.tenant_dropped,
            sender=get_tenant_model(),
            schema=tomb.schema,
            database=tomb.database,
        )
    return "dropped" if dropped else "kept"


def retry(tenant: AbstractTenant) -> None:
    """Put a failed (or stuck) tenant back to ``pending`` and enqueue it after commit."""
    from tenancy import tasks

    shared = shared_database()
    with transaction.atomic(using=shared):
        _set_state(tenant, TenantState.PENDING, tenant.last_error)
        tasks.dispatch_after_commit(
            tasks.provision_tenant, tenant.pk, using=shared, database=tenant.database
        )


@dataclass
class ReconcileReport:
    """What one reconciliation pass found and re-enqueued."""

    pending: list[Any] = field(default_factory=list)
    stuck: list[Any] = field(default_factory=list)
    tombstones: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"re-enqueued {len(self.pending)} pending, {len(self.stuck)} stuck provisioning, "
            f"{len(self.tombstones)} undone drops"
        )


def reconcile(*, grace: float | None = None) -> ReconcileReport:
    """Re-enqueue what is stuck: pending tenants (bulk_create, raw SQL, a broker
    outage), provisioning tenants that no worker holds, and undone drops.

    ``grace`` (default ``TENANCY_RECONCILE_GRACE``) spares what changed state
    in the last seconds, whose task is probably still queued.
    """
    from tenancy import tasks

    shared = shared_database()
    cutoff = timezone.now() - timedelta(seconds=conf.reconcile_grace() if grace is None else grace)
    manager = get_tenant_model()._default_manager.using(shared)
    report = ReconcileReport()
    databases: dict[Any, str] = {}
    for pk, database in manager.filter(
        state=TenantState.PENDING, state_changed_at__lte=cutoff
    ).values_list("pk", "database"):
        report.pending.append(pk)
        databases[pk] = database or _place(manager, pk)
    for pk, schema, database in manager.filter(
        state=TenantState.PROVISIONING, state_changed_at__lte=cutoff
    ).values_list("pk", "db_schema", "database"):
        if not locks.is_locked(schema, shared):
            report.stuck.append(pk)
            databases[pk] = database
    drops = Tombstone.objects.using(shared).filter(done_at__isnull=True, deleted_at__lte=cutoff)
    for pk, database in drops.values_list("pk", "database"):
        report.tombstones.append(pk)
        tasks.dispatch(tasks.drop_tenant, pk, database=database)
    for pk in (*report.pending, *report.stuck):
        tasks.dispatch(tasks.provision_tenant, pk, database=databases[pk] or None)
    if report.pending or report.stuck or report.tombstones:
        logger.info("reconcile: %s", report)
    return report


def write_tombstone(tenant: AbstractTenant, using: str) -> Tombstone | None:
    """Record, in the current transaction, that ``tenant``'s schema must be dropped."""
    if not tenant.db_schema:
        return None  # never named, so never provisioned
    return Tombstone.objects.using(using).create(
        schema=tenant.db_schema,
        database=tenant.database,
        schema_oid=storage.schema_oid(tenant.db_schema, tenant.database),
        tenant_pk=str(tenant.pk),
        tenant_repr=str(tenant)[:200],
    )


def _about(tenant: AbstractTenant) -> Any:
    """Bind the tenant to every log line of the block."""
    key = tenant.natural_key()
    name = key[0] if len(key) == 1 else key
    return logs.context(tenant=name, schema=tenant.db_schema, database=tenant.database)


def _name(tenant: AbstractTenant) -> None:
    """Name and place a tenant created without ``save()`` (bulk_create, raw SQL).

    The schema name is deterministic; the placement is not (it counts
    tenants), so only the first placement is written, and every caller goes
    on with the stored one.
    """
    from tenancy import placement

    rows = type(tenant)._default_manager.using(shared_database()).filter(pk=tenant.pk)
    tenant.db_schema = tenant.derive_schema()
    rows.update(db_schema=tenant.db_schema)
    if not tenant.database:
        rows.filter(database="").update(database=placement.choose(tenant))
        tenant.database = rows.values_list("database", flat=True).first() or ""


def _place(manager: Any, pk: Any) -> str:
    """Place a pending tenant that has no database yet; return its alias ("" if gone).

    The reconciler does this before it sends the provisioning task, so that
    the task goes to the queue of the tenant's database (``{database}`` in
    ``TENANCY_CELERY_QUEUE``), not to the first alias's.
    """
    tenant = manager.filter(pk=pk).first()
    if tenant is None:
        return ""
    try:
        _name(tenant)
    except Exception:  # a key that cannot be named: the worker records the error
        logger.warning("could not place tenant %r; sending it unplaced", pk, exc_info=True)
        return ""
    return str(tenant.database)


def _build(tenant: AbstractTenant, shared: str, *, pool_only: bool = False) -> bool | None:
    """Create the storage and mark the tenant ready; return whether the row still exists.

    With ``pool_only``, only claim a pooled schema, and return None if none is free.
    """
    done = _migrated(migrator.plan())
    same = tenant.database == shared
    if pool_only and not pool.enabled(tenant.database):
        return None
    try:
        # One transaction where the schema and the row share a database: the
        # schema exists if and only if the tenant is ready.
        with ddl_transaction(shared) if same else contextlib.nullcontext():
            if pool_only:
                if not pool.claim(tenant.db_schema, tenant.database):
                    return None
            elif not provisioning.provision(tenant.db_schema, tenant.database):
                if not tenant.migrations_digest:
                    # Never built for this tenant, yet the schema exists: another
                    # tenant's leftover (its row deleted without a tombstone).
                    raise ForeignSchema(tenant.db_schema, tenant.database)
                # A retried tenant whose migration failed: bring it up to date.
                migrator.migrate_schema(tenant.db_schema, tenant.database)
            if not _set_state(tenant, TenantState.READY, **done):
                raise _TenantGone  # deleted meanwhile: commit no orphan schema
    except _TenantGone:
        if not same:
            provisioning.drop(tenant.db_schema, tenant.database)
        logger.info("deleted while being provisioned; nothing kept")
        return False
    _refill(tenant.database)
    return True


def _refill(database: str) -> None:
    if pool.enabled(database):
        from tenancy import tasks

        tasks.dispatch(tasks.refill_pool, database, database=database)


class ForeignSchema(TenancyError, RuntimeError):
    """A new tenant's schema name is taken by a schema it did not build."""

    def __init__(self, schema: str, database: str) -> None:
        self.schema, self.database = schema, database
        super().__init__(
            f"Schema {schema} on {database!r} exists but was not built for this tenant "
            "(a deleted tenant's leftover?); its data is not adopted. Inspect it with "
            "`manage.py tenancy_reconcile --check`, drop it if it is garbage, then retry."
        )


class _TenantGone(Exception):
    """The tenant row disappeared while its schema was being built."""


def _migrated(the_plan: migrator.Plan) -> dict[str, Any]:
    return {"migrations_digest": the_plan.digest, "migrations_applied": len(the_plan.keys)}


def _clear_leftovers(schema: str, database: str) -> None:
    """Drop what a deleted tenant of the same key left under this schema name."""
    shared = shared_database()
    for tomb in Tombstone.objects.using(shared).filter(
        schema=schema, database=database, done_at__isnull=True
    ):
        _drop_storage_of(tomb, owner_check=False)
        Tombstone.objects.using(shared).filter(pk=tomb.pk).update(done_at=timezone.now())


def _drop_storage_of(tomb: Tombstone, *, owner_check: bool = True) -> bool:
    """Drop a tombstone's schema if it is still the deleted tenant's; return whether dropped."""
    if storage.uses_schemas_alias(tomb.database):
        current = storage.schema_oid(tomb.schema, tomb.database)
        if current is None or (tomb.schema_oid is not None and current != tomb.schema_oid):
            return False  # gone, or a newer schema of the same name
    elif owner_check and _owned_by_ready_tenant(tomb):
        return False  # the new tenant's provisioning replaced the old tables already
    return provisioning.drop(tomb.schema, tomb.database)


def _owned_by_ready_tenant(tomb: Tombstone) -> bool:
    return (
        get_tenant_model()
        ._default_manager.using(shared_database())
        .filter(db_schema=tomb.schema, database=tomb.database, state=TenantState.READY)
        .exists()
    )


def _set_state(tenant: AbstractTenant, state: str, error: str = "", **fields: Any) -> bool:
    """Write the tenant's state (and notify waiters at commit); return whether the row exists."""
    shared = shared_database()
    now = timezone.now()
    with transaction.atomic(using=shared):
        updated = (
            type(tenant)
            ._default_manager.using(shared)
            .filter(pk=tenant.pk)
            .update(state=state, last_error=error, state_changed_at=now, **fields)
        )
        notify.send(tenant.db_schema or "", shared)
    tenant.state, tenant.last_error, tenant.state_changed_at = state, error, now
    for name, value in fields.items():
        setattr(tenant, name, value)
    return bool(updated)


def _record_failure(
    tenant: AbstractTenant, exc: BaseException, *, final: bool, action: str = "provisioning"
) -> None:
    error = describe(exc)
    # A failed migration left the schema as it was: until the retry it stays usable.
    retry_state = TenantState.READY if action == "migration" else TenantState.PROVISIONING
    state = TenantState.FAILED if final else retry_state
    try:
        _set_state(tenant, state, error)
    except DatabaseError:
        logger.warning("could not record the failure of %s: the database is unreachable", tenant)
        return
    log = logger.error if final else logger.warning
    log("%s failed%s: %s", action, "" if final else " (will retry)", error)
    if final and action == "provisioning":
        _send_robust(signals.provisioning_failed, sender=type(tenant), tenant=tenant, error=error)


def describe(exc: BaseException) -> str:
    """Return the one-line form of an error kept on a tenant or tombstone."""
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def _send_robust(signal: Any, **kwargs: Any) -> None:
    for receiver, result in signal.send_robust(**kwargs):
        if isinstance(result, Exception):
            logger.error("receiver %r of %s failed", receiver, signal, exc_info=result)

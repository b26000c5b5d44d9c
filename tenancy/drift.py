"""Find and repair drift between the tenant rows and the databases.

Drift is what no lifecycle task will fix by itself: a schema without a
tenant row (a restore, a manual change), a ready tenant whose schema is gone,
pooled schemas built at an old migration state or left untracked, and drops
that never finished. :func:`find` reports; :func:`repair` fixes what is safe
to fix and never drops a schema that a tenant row still names.

A schema is recognised as the library's by its ``tenancy_migrations`` table
or by its name (``TENANCY_SCHEMA_PREFIX``, the pool's prefix), so other
schemas of the database are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connections

from tenancy import conf, get_tenant_model, lifecycle, migrator, pool, provisioning, storage, tasks
from tenancy.models import PoolSchema, TenantState, Tombstone


@dataclass
class Drift:
    """Schema names per kind of drift (``schema@alias`` when not on the default alias)."""

    orphan_schemas: list[str] = field(default_factory=list)
    missing_schemas: list[str] = field(default_factory=list)
    stale_pool: list[str] = field(default_factory=list)
    undone_drops: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.orphan_schemas, self.missing_schemas, self.stale_pool, self.undone_drops))


def tenant_schemas(using: str) -> set[str]:
    """Return the names of the schemas (or prefixes) on ``using`` built by this library."""
    connection = connections[using]
    prefixes = tuple(p for p in (conf.schema_prefix(), pool.PREFIX) if p)
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            cursor.execute(
                "SELECT n.nspname FROM pg_namespace n WHERE EXISTS (SELECT 1 FROM pg_class c "
                "WHERE c.relnamespace = n.oid AND c.relname = %s AND c.relkind = 'r') "
                "OR n.nspname LIKE ANY(%s)",
                [migrator.RECORD_TABLE, [p.replace("_", "\\_") + "%" for p in prefixes]],
            )
            return {row[0] for row in cursor.fetchall()}
        names = connection.introspection.table_names(cursor)
    suffix = storage.PREFIX_SEPARATOR + migrator.RECORD_TABLE
    found = {name[: -len(suffix)] for name in names if name.endswith(suffix)}
    separator = storage.PREFIX_SEPARATOR
    return found | {
        name.split(separator, 1)[0]
        for name in names
        if separator in name and name.startswith(prefixes)
    }


def find() -> Drift:
    """Report every kind of drift on every tenant database."""
    shared = lifecycle.shared_database()
    tenants = get_tenant_model()._default_manager.using(shared)
    drops = Tombstone.objects.using(shared).filter(done_at__isnull=True)
    pooled = PoolSchema.objects.using(shared)
    digest = migrator.plan().digest
    drift = Drift(undone_drops=sorted(drops.values_list("schema", flat=True)))
    aliases = set(conf.databases()) | set(tenants.values_list("database", flat=True))
    for alias in sorted(a for a in aliases if a):
        existing = tenant_schemas(alias)
        named = set(tenants.filter(database=alias).values_list("db_schema", flat=True))
        dropping = set(drops.filter(database=alias).values_list("schema", flat=True))
        tracked = dict(pooled.filter(database=alias).values_list("name", "digest"))
        untracked_pool = {s for s in existing if s.startswith(pool.PREFIX)} - set(tracked)
        orphans = existing - named - dropping - set(tracked) - untracked_pool
        ready = tenants.filter(database=alias, state=TenantState.READY)
        missing = set(ready.values_list("db_schema", flat=True)) - existing
        stale = {name for name, d in tracked.items() if d != digest} | untracked_pool
        drift.orphan_schemas += [_label(s, alias) for s in sorted(orphans)]
        drift.missing_schemas += [_label(s, alias) for s in sorted(missing)]
        drift.stale_pool += [_label(s, alias) for s in sorted(stale)]
    return drift


def repair(*, drop_orphans: bool = False) -> Drift:
    """Repair what is safe and return what was found.

    Ready tenants without a schema go back to ``pending`` and are provisioned;
    stale or untracked pooled schemas are dropped; undone drops are sent again.
    Orphan schemas are only dropped with ``drop_orphans``, and only if no
    tenant row names them at that moment.
    """
    drift = find()
    shared = lifecycle.shared_database()
    tenants = get_tenant_model()._default_manager.using(shared)
    for label in drift.missing_schemas:
        schema, alias = _parse(label)
        for tenant in tenants.filter(db_schema=schema, database=alias, state=TenantState.READY):
            lifecycle.retry(tenant)
    for label in drift.stale_pool:
        schema, alias = _parse(label)
        provisioning.drop(schema, alias)
        PoolSchema.objects.using(shared).filter(name=schema, database=alias).delete()
    for tomb in Tombstone.objects.using(shared).filter(done_at__isnull=True):
        tasks.dispatch(tasks.drop_tenant, tomb.pk, database=tomb.database)
    if drop_orphans:
        for label in drift.orphan_schemas:
            schema, alias = _parse(label)
            if not tenants.filter(db_schema=schema).exists():
                provisioning.drop(schema, alias)
    return drift


def _label(schema: str, alias: str) -> str:
    return schema if alias == "default" else f"{schema}@{alias}"


def _parse(label: str) -> tuple[str, str]:
    schema, _, alias = label.partition("@")
    return schema, alias or "default"

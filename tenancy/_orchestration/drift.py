"""Find and repair drift between the tenant rows and the databases.

Drift is what no lifecycle task will fix by itself: a schema of the library's
whose owner has no tenant row (a restore, a manual change, a crash between a
build and its row), a ready tenant whose schema is gone, pooled schemas built
at an old migration state or left untracked, and drops that never finished.
:func:`find` reports; :func:`repair` fixes what is safe to fix.

A schema is the library's only if it carries the library's ownership mark
(:mod:`tenancy._primitives.ownership`); every other schema of the database is
invisible here, and never touched. An orphan is dropped (with
``drop_orphans``) only as its mark's owner, and only while no tenant row or
pool entry is that owner.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction
from django.db.models import Q

from tenancy._migrating.plan import plan
from tenancy._migrating.recorder import RECORD_TABLE
from tenancy._orchestration.pool import PREFIX as POOL_PREFIX
from tenancy._orchestration.transitions import advance
from tenancy._primitives import conf, jobs, ownership, provisioning, shared, storage
from tenancy._primitives.allocation import new_incarnation
from tenancy._primitives.records import PoolSchema, Tombstone
from tenancy._primitives.states import FAILED, PENDING, READY


@dataclass
class Drift:
    """Schema names per kind of drift (``schema@alias`` when not on the default alias)."""

    orphan_schemas: list[str] = field(default_factory=list)
    missing_schemas: list[str] = field(default_factory=list)
    stale_pool: list[str] = field(default_factory=list)
    undone_drops: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.orphan_schemas, self.missing_schemas, self.stale_pool, self.undone_drops))


def marked_schemas(using: str) -> dict[str, str]:
    """Return ``{schema: owner}`` of every schema (or prefix) on ``using`` the library marked."""
    connection = connections[using]
    if storage.uses_schemas(connection):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                "WHERE obj_description(oid, 'pg_namespace') LIKE %s",
                [ownership.MARK.replace("_", "\\_") + "%"],
            )
            rows = cursor.fetchall()
        return {name: owner for name, comment in rows if (owner := _owner(comment))}
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    suffix = storage.PREFIX_SEPARATOR + ownership.OWNER_TABLE
    prefixes = [name[: -len(suffix)] for name in names if name.endswith(suffix)]
    found = {prefix: ownership.schema_owner(prefix, using).owner for prefix in prefixes}
    return {prefix: owner for prefix, owner in found.items() if owner}


def _owner(comment: str) -> str | None:
    owner = comment[len(ownership.MARK) :].strip()
    return owner if owner.startswith(("tenant:", "pool:")) else None


def find() -> Drift:
    """Report every kind of drift on every tenant database."""
    alias = shared.database()
    tenants = shared.tenants(alias)
    drops = Tombstone.objects.using(alias).filter(done_at__isnull=True)
    pooled = PoolSchema.objects.using(alias)
    digest = plan().digest
    drift = Drift(undone_drops=sorted(drops.values_list("schema", flat=True)))
    aliases = set(conf.databases()) | set(tenants.values_list("database", flat=True))
    for using in sorted(a for a in aliases if a):
        marked = marked_schemas(using)
        owners = {
            ownership.tenant_owner(i)
            for i in tenants.filter(database=using, incarnation__isnull=False).values_list(
                "incarnation", flat=True
            )
        }
        owners |= {
            ownership.tenant_owner(i)
            for i in drops.filter(database=using).values_list("incarnation", flat=True)
            if i
        }
        tracked = {
            name: (token, pool_digest)
            for name, token, pool_digest in pooled.filter(database=using).values_list(
                "name", "token", "digest"
            )
        }
        pool_owners = {ownership.pool_owner(token) for token, _ in tracked.values() if token}
        orphans = {name for name, owner in marked.items() if owner not in owners | pool_owners}
        untracked_pool = {n for n in orphans if n.startswith(POOL_PREFIX)}
        built = tenants.filter(database=using, incarnation__isnull=False).filter(
            Q(state=READY) | (Q(state=FAILED) & ~Q(migrations_digest=""))
        )
        missing = {
            schema
            for schema, incarnation in built.values_list("db_schema", "incarnation")
            if marked.get(schema) != ownership.tenant_owner(incarnation)
        }
        stale = {name for name, (_, d) in tracked.items() if d != digest} | untracked_pool
        drift.orphan_schemas += [_label(s, using) for s in sorted(orphans - untracked_pool)]
        drift.missing_schemas += [_label(s, using) for s in sorted(missing)]
        drift.stale_pool += [_label(s, using) for s in sorted(stale)]
    return drift


def repair(*, drop_orphans: bool = False) -> Drift:
    """Repair what is safe and return what was found.

    Built tenants (ready, or failed after they were built) without their schema
    go back to ``pending`` and are provisioned, empty; stale or untracked pooled
    schemas are dropped; undone drops are sent again. Orphan schemas are only
    dropped with ``drop_orphans``, as the owner their mark names, and only if
    no tenant row is that owner.
    """
    drift = find()
    alias = shared.database()
    tenants = shared.tenants(alias)
    for label in drift.missing_schemas:
        schema, using = _parse(label)
        for tenant in tenants.filter(db_schema=schema, database=using, state__in=[READY, FAILED]):
            _rebuild(tenant)
    for label in drift.stale_pool:
        schema, using = _parse(label)
        owner = marked_schemas(using).get(schema)
        if owner is not None and owner.startswith("pool:"):
            provisioning.drop_schema(schema, using, owner)
        PoolSchema.objects.using(alias).filter(name=schema, database=using).delete()
    for tomb in Tombstone.objects.using(alias).filter(done_at__isnull=True):
        jobs.send(jobs.DROP, tomb.pk, database=tomb.database)
    if drop_orphans:
        for label in drift.orphan_schemas:
            schema, using = _parse(label)
            owner = marked_schemas(using).get(schema)
            if owner is None or not owner.startswith("tenant:"):
                continue
            incarnation = owner.split(":", 1)[1]
            if not tenants.filter(incarnation=incarnation).exists():
                provisioning.drop_schema(schema, using, owner)
    return drift


def _rebuild(tenant: Any) -> None:
    """Send a ready tenant whose storage is gone back to provisioning."""
    if advance(tenant, PENDING, "its schema was missing (drift repair)", expect=(READY, FAILED)):
        jobs.send(jobs.PROVISION, tenant.pk, database=tenant.database)


def _label(schema: str, alias: str) -> str:
    return schema if alias == "default" else f"{schema}@{alias}"


def _parse(label: str) -> tuple[str, str]:
    schema, _, alias = label.partition("@")
    return schema, alias or "default"


@dataclass
class Adopted:
    """What :func:`adopt_legacy` did: incarnations given, storage marked, what it left."""

    named: list[str] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)
    pooled: list[str] = field(default_factory=list)
    #: Schemas that were not marked, and why (someone else's mark, not built by the library).
    left: list[str] = field(default_factory=list)


def adopt_legacy() -> Adopted:
    """Give tenants built by an earlier version of the library an incarnation, and mark
    their storage as theirs (an explicit, operator-run step after upgrading).

    A schema is marked only when it carries no mark at all and holds the library's
    ``tenancy_migrations`` table (an earlier version built it); its role only when it
    owns that schema. Anything else under a tenant's name is reported, never marked.
    """
    alias = shared.database()
    tenants = shared.tenants(alias)
    result = Adopted()
    for tenant in tenants.filter(incarnation__isnull=True, db_schema__isnull=False):
        incarnation = new_incarnation()
        if not tenants.filter(pk=tenant.pk, incarnation__isnull=True).update(
            incarnation=incarnation
        ):
            continue  # named meanwhile
        result.named.append(tenant.db_schema)
        owner = ownership.tenant_owner(incarnation)
        if not tenant.database:
            result.left.append(f"{tenant.db_schema} (no database yet: provisioning builds it)")
            continue
        outcome = _mark_legacy(tenant.db_schema, tenant.database, owner)
        label = _label(tenant.db_schema, tenant.database)
        if outcome == "marked":
            result.marked.append(label)
        else:
            result.left.append(f"{label} ({outcome})")
    for pooled in PoolSchema.objects.using(alias).filter(token=""):
        token = secrets.token_hex(16)
        if _mark_legacy(pooled.name, pooled.database, ownership.pool_owner(token)) == "marked":
            PoolSchema.objects.using(alias).filter(pk=pooled.pk).update(token=token)
            result.pooled.append(_label(pooled.name, pooled.database))
        else:
            pooled.delete()  # nothing of the pool's there: forget the entry
    return result


def _mark_legacy(schema: str, using: str, owner: str) -> str:
    """Mark an unmarked schema built by an earlier version; return "marked" or why not."""
    found = ownership.schema_owner(schema, using)
    if not found.exists:
        return "no schema: provisioning builds it"
    if found.owner is not None:
        return f"already marked for {found.owner}"
    record = storage.table_name(schema, RECORD_TABLE, using)
    if record not in storage.existing_tenant_tables(schema, using):
        return "not built by django-tenancy (no tenancy_migrations table): left alone"
    connection = connections[using]
    with transaction.atomic(using=using):
        ownership.mark_schema(schema, using, owner)
        if storage.uses_schemas(connection):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
                    "WHERE n.nspname = %s",
                    [schema],
                )
                row = cursor.fetchone()
            if row and row[0] == schema and ownership.role_owner(schema, using).owner is None:
                ownership.mark_role(schema, using, owner)
    return "marked"

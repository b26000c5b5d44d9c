"""Drift repair: ``tenancy_reconcile --check`` finds what disagrees between the tenant
rows and the database, ``--repair`` fixes what is safe and reports the rest.

These tests were written against the interface asked for in issue 6, before
``tenancy_reconcile`` had it (it came in 8c153d5):

- ``tenancy_reconcile --check --json`` prints ``{"orphan_schemas": [...],
  "missing_schemas": [...], "stale_pool": [...], "undone_drops": [...]}`` (schema
  names) and changes nothing;
- ``tenancy_reconcile --repair`` re-enqueues the provisioning of ready tenants whose
  schema is missing, drops stale pool schemas, re-enqueues undone drops, and only
  reports orphan schemas; ``--drop-orphans`` also drops those. A schema that belongs
  to a tenant row is never dropped.

A schema with an undone tombstone is reported under ``undone_drops``, not also as an
orphan; a pending tenant (never provisioned) has no schema yet and is not "missing".
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tenancy._delivery import dispatch
from tenancy._orchestration import pool
from tenancy._primitives import ownership, storage
from tenancy.models import PoolSchema, TenantState, Tombstone
from tests.support import drop_storage
from tests.testapp.models import Customer, Project

pytestmark = pytest.mark.postgresql

ORPHAN = "tenant_drift_orphan"
FOREIGN = "tenant_drift_foreign"


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace "
            "WHERE nspname LIKE 'tenant%%' OR nspname LIKE 'tenancy_pool_%%'"
        )
        return {row[0] for row in cursor.fetchall()}


DRIFT_KEYS = ("orphan_schemas", "missing_schemas", "stale_pool", "undone_drops")
NO_DRIFT = {key: [] for key in DRIFT_KEYS}


def _check() -> dict[str, list[str]]:
    """Run ``tenancy_reconcile --check --json``; return its four lists."""
    out = StringIO()
    call_command("tenancy_reconcile", "--check", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(DRIFT_KEYS) <= set(report), report
    return {key: report[key] for key in DRIFT_KEYS}


@pytest.fixture
def drifted(make_tenant, settings, monkeypatch):
    """One database with every kind of drift, next to a healthy tenant."""
    healthy = make_tenant("drift_ok")
    Project.for_tenant(healthy).objects.create(name="keep me")
    # A ready tenant whose schema is gone (restored from an older backup, dropped by hand).
    missing = make_tenant("drift_missing")
    drop_storage(missing)
    # A schema of the library's that no tenant row names (a row deleted by raw SQL, a
    # half-done restore).
    orphan = make_tenant("drift_orphan")
    assert orphan.db_schema == ORPHAN
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM testapp_customer WHERE id = %s", [orphan.pk])
    # A schema someone else made, named like a tenant's: never the library's to report.
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{FOREIGN}"')
        cursor.execute(f'CREATE TABLE "{FOREIGN}"."stray" (id int)')
    # A pooled schema built at an older migration state.
    settings.TENANCY_POOL_SIZE = 1
    assert pool.refill("default") == 1
    settings.TENANCY_POOL_SIZE = 0
    stale = PoolSchema.objects.get()
    PoolSchema.objects.filter(pk=stale.pk).update(digest="0" * 32)
    # A deleted tenant whose drop message was lost (broker outage at delete).
    gone = make_tenant("drift_gone")
    monkeypatch.setattr(dispatch, "publish", lambda *args, **kwargs: False)
    gone.delete()
    monkeypatch.undo()
    # A tenant created by bulk_create: pending, no schema yet, and that is not drift.
    Customer._base_manager.bulk_create([Customer(name="drift_pending")])
    assert Tombstone.objects.filter(done_at__isnull=True).count() == 1
    return {
        "healthy": healthy,
        "missing": missing,
        "stale_pool": stale.name,
        "gone": gone.db_schema,
    }


def test_check_reports_every_kind_of_drift_as_json_and_changes_nothing(drifted):
    before = _schemas()
    report = _check()
    assert report["orphan_schemas"] == [ORPHAN]
    assert report["missing_schemas"] == ["tenant_drift_missing"]
    assert report["stale_pool"] == [drifted["stale_pool"]]
    assert report["undone_drops"] == [drifted["gone"]]
    assert _schemas() == before
    assert Tombstone.objects.filter(done_at__isnull=True).count() == 1
    assert Customer.objects.get(name="drift_missing").state == TenantState.READY


def test_check_of_a_healthy_database_reports_nothing(make_tenant):
    make_tenant("drift_fine")
    assert _check() == NO_DRIFT


def test_repair_fixes_what_is_safe_and_only_reports_orphan_schemas(drifted):
    out = StringIO()
    call_command("tenancy_reconcile", "--repair", stdout=out)  # eager: the work runs inline
    # The missing schema is provisioned again and the tenant is usable.
    missing = Customer.objects.get(name="drift_missing")
    assert missing.state == TenantState.READY
    assert storage.schema_exists(missing.db_schema, "default")
    assert Project.for_tenant(missing).objects.count() == 0
    # The stale pooled schema is dropped, its row with it.
    assert not storage.schema_exists(drifted["stale_pool"], "default")
    assert not PoolSchema.objects.filter(name=drifted["stale_pool"]).exists()
    # The undone drop is done.
    assert not storage.schema_exists(drifted["gone"], "default")
    assert not Tombstone.objects.filter(done_at__isnull=True).exists()
    # The orphan is reported, not dropped; the healthy tenant is untouched.
    assert storage.schema_exists(ORPHAN, "default")
    assert ORPHAN in out.getvalue()
    assert list(Project.for_tenant(drifted["healthy"]).objects.values_list("name", flat=True)) == [
        "keep me"
    ]
    assert _check() == {**NO_DRIFT, "orphan_schemas": [ORPHAN]}


def test_orphan_schemas_are_dropped_only_with_drop_orphans(drifted):
    call_command("tenancy_reconcile", "--repair", stdout=StringIO())
    assert storage.schema_exists(ORPHAN, "default")
    call_command("tenancy_reconcile", "--repair", "--drop-orphans", stdout=StringIO())
    assert not storage.schema_exists(ORPHAN, "default")
    assert _check()["orphan_schemas"] == []
    assert storage.schema_exists(FOREIGN, "default")  # not the library's: never dropped
    healthy = drifted["healthy"]
    assert list(Project.for_tenant(healthy).objects.values_list("name", flat=True)) == ["keep me"]


def test_repair_never_drops_a_schema_that_still_has_a_tenant(make_tenant):
    """Whatever state its row is in, and whatever its name says now."""
    ready = make_tenant("own_ready")
    renamed = make_tenant("own_before")
    Customer.objects.filter(pk=renamed.pk).update(name="own_after")  # keeps its schema
    failed = make_tenant("own_failed")
    busy = make_tenant("own_busy")
    # A key deleted and signed up again, with the old tombstone not done: the new
    # incarnation has a schema of its own.
    phoenix = make_tenant("own_phoenix")
    phoenix.delete()
    phoenix = make_tenant("own_phoenix")
    Tombstone.objects.update(done_at=None)
    tenants = [ready, renamed, failed, busy, phoenix]
    for tenant in tenants:
        Project.for_tenant(tenant).objects.create(name=f"data of {tenant.db_schema}")
    Customer.objects.filter(pk=failed.pk).update(state=TenantState.FAILED, last_error="x")
    Customer.objects.filter(pk=busy.pk).update(state=TenantState.PROVISIONING)
    oids = {t.db_schema: storage.schema_oid(t.db_schema, "default") for t in tenants}

    report = _check()
    assert report["orphan_schemas"] == []
    assert report["missing_schemas"] == []
    call_command("tenancy_reconcile", "--repair", "--drop-orphans", stdout=StringIO())

    for tenant in tenants:
        assert storage.schema_oid(tenant.db_schema, "default") == oids[tenant.db_schema]
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT name FROM "{tenant.db_schema}"."testapp_project"')
            assert cursor.fetchall() == [(f"data of {tenant.db_schema}",)]


def test_a_signup_never_adopts_the_data_of_an_orphan_schema_of_the_same_name(make_tenant):
    """A tenant row deleted without its tombstone (raw SQL, a restore of the shared
    tables from an older backup) leaves an orphan schema. A new signup whose key names
    the same schema must not be handed the old tenant's data: it either gets a fresh
    schema or fails with an error that names the orphan."""
    old = make_tenant("ghost")
    Project.for_tenant(old).objects.create(name="the old tenant's secret")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM testapp_customer WHERE id = %s", [old.pk])
    assert _check()["orphan_schemas"] == ["tenant_ghost"]
    Customer.objects.create(name="ghost")  # eager: provisioned inline
    new = Customer.objects.get(name="ghost")
    if new.state == TenantState.FAILED:
        assert "tenant_ghost" in new.last_error
        return
    assert new.state == TenantState.READY
    assert list(Project.for_tenant(new).objects.values_list("name", flat=True)) == []


def _as_before_the_upgrade(tenant: Customer) -> None:
    """Make a tenant look built by an earlier version: no incarnation, no mark."""
    Customer.objects.filter(pk=tenant.pk).update(incarnation=None)
    with connection.cursor() as cursor:
        cursor.execute(f'COMMENT ON SCHEMA "{tenant.db_schema}" IS NULL')


def test_tenants_of_an_earlier_version_are_left_alone_until_adopted(make_tenant):
    """Unmarked, a tenant of an earlier version is served but never migrated, moved or
    dropped; `tenancy_reconcile --adopt-legacy` gives it an incarnation and marks its
    schema (only a schema the library built: it holds tenancy_migrations), after which
    the whole lifecycle applies to it again."""
    old = make_tenant("legacy")
    Project.for_tenant(old).objects.create(name="kept")
    _as_before_the_upgrade(old)
    with connection.cursor() as cursor:  # a look-alike the library never built
        cursor.execute(f'CREATE SCHEMA "{FOREIGN}"')
    Customer._base_manager.bulk_create(
        [
            Customer(
                name="look_alike", db_schema=FOREIGN, database="default", state=TenantState.READY
            )
        ]
    )
    Customer.objects.filter(pk__in=[old.pk]).update(migrations_digest="0" * 32)
    out = StringIO()
    with pytest.raises(CommandError, match="built by an earlier version"):
        call_command("tenancy_migrate", "--inline", stdout=out)
    old.refresh_from_db()
    assert old.incarnation is None and Project.for_tenant(old).objects.count() == 1

    out = StringIO()
    call_command("tenancy_reconcile", "--adopt-legacy", stdout=out)
    assert "gave 2 tenant(s) an incarnation, marked 1 schema(s)" in out.getvalue()
    assert f"{FOREIGN} (not built by django-tenancy" in out.getvalue()
    old.refresh_from_db()
    assert old.incarnation
    assert ownership.owns_schema(old.db_schema, "default", ownership.tenant_owner(old.incarnation))
    assert ownership.schema_owner(FOREIGN, "default").owner is None  # still not ours
    old.delete()  # now dropped as its own
    assert not storage.schema_exists(old.db_schema, "default")
    assert storage.schema_exists(FOREIGN, "default")

"""The per-tenant migration machinery: plan, records, compiled replay."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tenancy._migrating import executor, recorder
from tenancy._migrating.plan import plan as migration_plan
from tenancy._primitives import ownership, provisioning, storage
from tenancy.exceptions import TenantMigrationError
from tests import citus_cluster
from tests.support import drop_storage, owner_of
from tests.testapp.models import Customer, Project


def test_the_plan_holds_the_tenant_apps_migrations_and_a_stable_digest():
    the_plan = migration_plan()
    assert ("testapp", "0001_initial") in the_plan.keys
    assert ("authapp", "0001_initial") in the_plan.keys
    assert all(app in {"testapp", "authapp"} for app, _ in the_plan.keys)
    assert the_plan.digest == migration_plan().digest


def test_a_new_tenant_is_recorded_as_fully_migrated(tenant):
    assert recorder.applied(tenant.db_schema, "default") == set(migration_plan().keys)
    assert recorder.pending(tenant.db_schema, "default") == []
    assert tenant.migrations_digest == migration_plan().digest
    assert tenant.migrations_applied == len(migration_plan().keys)


def test_a_current_tenant_has_nothing_to_migrate(tenant):
    assert executor.migrate_schema(tenant.db_schema, "default") == []


def _forget_history(tenant) -> None:
    """Make a tenant look as if it had never applied its migrations (tables gone)."""
    drop_storage(tenant)
    with transaction.atomic():
        provisioning.create_schema(tenant.db_schema, "default", owner_of(tenant))


@pytest.mark.postgresql
def test_sql_recorded_on_one_tenant_is_replayed_on_the_next(make_tenant):
    first, second = make_tenant("first"), make_tenant("second")
    _forget_history(first), _forget_history(second)
    the_plan = migration_plan()
    the_plan.compiled.clear()
    assert executor.migrate_schema(first.db_schema, "default") == the_plan.keys
    assert ("default", tuple(the_plan.keys)) in the_plan.compiled  # recorded on `first`
    assert executor.migrate_schema(second.db_schema, "default") == the_plan.keys
    for tenant in (first, second):
        Customer.objects.filter(pk=tenant.pk).update(migrations_digest=the_plan.digest)
        tenant.refresh_from_db()
        Project.for_tenant(tenant).objects.create(name="after replay")
        assert recorder.pending(tenant.db_schema, "default") == []


@pytest.mark.postgresql
def test_a_schema_built_from_recorded_sql_sends_its_tables_in_one_round_trip(make_tenant):
    """The first schema a process builds records the DDL; every later one replays it
    as one batch (one query message), not one round trip per statement. On Citus,
    which refuses several statements in one query, it replays them one per query."""
    migration_plan().compiled_builds.clear()
    make_tenant("recorder")  # records the DDL statement by statement
    recorded = migration_plan().compiled_builds["default"]
    if citus_cluster.active():
        assert len(recorded) > 5 and all(sql.count("CREATE TABLE") <= 1 for sql, _ in recorded)
        tables = sum(sql.startswith("CREATE TABLE") for sql, _ in recorded)
    else:
        assert len(recorded) == 1 and recorded[0][0].count("CREATE TABLE") >= 5
        tables = 1  # the batch
    with CaptureQueriesContext(connection) as queries:
        replayed = make_tenant("replayed")
    creates = [q["sql"] for q in queries.captured_queries if "CREATE TABLE" in q["sql"]]
    # the batch (on Citus each table's statement), and the record of applied migrations
    assert len(creates) == tables + 1, creates

    def tables(schema: str) -> set[str]:
        return {name.split(".")[-1] for name in storage.existing_tenant_tables(schema, "default")}

    assert tables(replayed.db_schema) == tables("tenant_recorder")
    Project.for_tenant(replayed).objects.create(name="built from the batch")


def test_a_migration_that_fails_leaves_the_tenant_as_it_was(make_tenant, monkeypatch):
    tenant = make_tenant("fragile")
    _forget_history(tenant)
    the_plan = migration_plan()
    the_plan.compiled.clear()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(recorder, "record", broken)
    with pytest.raises(TenantMigrationError, match=r"(authapp|testapp)\.0001_initial.*disk full"):
        executor.migrate_schema(tenant.db_schema, "default")
    monkeypatch.undo()
    mark = storage.table_name(tenant.db_schema, ownership.OWNER_TABLE, "default")
    assert storage.existing_tenant_tables(tenant.db_schema, "default") - {mark} == set()


def test_retrying_a_tenant_whose_migration_failed_migrates_it(make_tenant):
    from tenancy import lifecycle
    from tenancy.models import TenantState

    tenant = make_tenant("retried")
    _forget_history(tenant)  # its storage is behind the current migrations
    if not storage.uses_schemas(connection):
        recorder.record(connection, tenant.db_schema, [])
    Customer.objects.filter(pk=tenant.pk).update(state=TenantState.FAILED, last_error="x")
    tenant.refresh_from_db()
    lifecycle.retry(tenant)
    tenant.refresh_from_db()
    assert tenant.state == TenantState.READY
    assert recorder.pending(tenant.db_schema, "default") == []
    Project.for_tenant(tenant).objects.create(name="usable")


@pytest.mark.postgresql
def test_run_python_in_a_tenant_migration_queries_the_migrating_database(make_tenant):
    from django.db import router

    from tenancy._classes.routers import tenant_migrations
    from tenancy.state import PerTenant

    class Historical(PerTenant):
        pass

    with tenant_migrations("other"):
        assert router.db_for_write(Historical) == "other"
    assert router.db_for_write(Historical) is None or router.db_for_write(Historical) == "default"


def test_migrating_a_ready_tenant_whose_schema_is_gone_fails_it_instead_of_rebuilding_it(
    make_tenant,
):
    """A ready tenant's schema dropped by hand (or lost in a restore) is not rebuilt,
    empty, by the next tenancy_migrate, as if nothing had happened: the tenant is
    marked failed with an error that says what is missing and how to repair it."""
    from tenancy import lifecycle

    tenant = make_tenant("vanished")
    drop_storage(tenant)
    Customer.objects.filter(pk=tenant.pk).update(migrations_digest="0" * 32)
    with pytest.raises(Exception, match="is missing"):
        lifecycle.migrate_tenant(tenant.pk)
    tenant.refresh_from_db()
    assert tenant.state == "failed" and "tenancy_reconcile --check" in tenant.last_error
    assert not storage.schema_exists(tenant.db_schema, "default")


def test_a_tenant_failed_for_its_missing_schema_is_not_rebuilt_by_the_next_migrate(make_tenant):
    """Only an explicit repair builds a lost schema again (empty): a second
    tenancy_migrate leaves the tenant failed and its schema absent."""
    from tenancy import lifecycle

    tenant = make_tenant("still_vanished")
    drop_storage(tenant)
    Customer.objects.filter(pk=tenant.pk).update(migrations_digest="0" * 32)
    for _ in range(2):
        with pytest.raises(Exception, match="is missing"):
            lifecycle.migrate_tenant(tenant.pk)
    tenant.refresh_from_db()
    assert tenant.state == "failed"
    assert not storage.schema_exists(tenant.db_schema, "default")

"""The storage primitives: building and dropping a tenant's schema, only ever the owner's."""

import pytest
from django.db import connection

from tenancy._migrating.plan import plan as migration_plan
from tenancy._primitives import ddl, ownership, provisioning, storage
from tenancy._primitives.ddl import tenant_schema_editor
from tenancy.exceptions import ForeignObject
from tests.conftest import drop_all_tenant_storage, on_postgresql
from tests.support import build_storage, drop_raw, drop_storage, owner_of
from tests.testapp.models import Customer, Project

STRANGER = ownership.tenant_owner("f" * 32)


@pytest.fixture
def pending(transactional_db, settings):
    settings.TENANCY_EAGER = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    tenant = Customer.objects.create(name="fresh")
    yield tenant
    drop_all_tenant_storage()


def test_a_build_marks_the_storage_as_the_owners_and_is_idempotent(pending):
    assert not storage.schema_exists(pending.db_schema, "default")
    assert build_storage(pending) is True
    assert ownership.schema_owner(pending.db_schema, "default") == (True, owner_of(pending))
    tables = storage.existing_tenant_tables(pending.db_schema, "default")
    assert build_storage(pending) is False
    assert storage.existing_tenant_tables(pending.db_schema, "default") == tables


def test_a_build_refuses_a_name_that_holds_someone_elses_storage(pending):
    build_storage(pending)
    with pytest.raises(ForeignObject, match=pending.db_schema):
        provisioning.create_schema(pending.db_schema, "default", STRANGER)


def test_a_drop_removes_only_the_owners_storage_and_is_idempotent(pending):
    build_storage(pending)
    assert provisioning.drop_schema(pending.db_schema, "default", STRANGER) is False
    assert storage.schema_exists(pending.db_schema, "default")
    assert drop_storage(pending) is True
    assert not storage.schema_exists(pending.db_schema, "default")
    assert storage.existing_tenant_tables(pending.db_schema, "default") == set()
    assert drop_storage(pending) is False


def test_a_drop_never_touches_storage_the_library_did_not_build(pending):
    with connection.cursor() as cursor:
        if on_postgresql():
            cursor.execute(f'CREATE SCHEMA "{pending.db_schema}"')
            cursor.execute(f'CREATE TABLE "{pending.db_schema}"."keep" (x int)')
        else:
            cursor.execute(f'CREATE TABLE "{pending.db_schema}__keep" (x int)')
    try:
        assert ownership.schema_owner(pending.db_schema, "default") == (True, None)
        assert drop_storage(pending) is False
        assert storage.schema_exists(pending.db_schema, "default")
    finally:
        drop_raw(pending.db_schema)


def test_drop_leaves_other_tenants_alone(make_tenant):
    keep, gone = make_tenant("keep"), make_tenant("keep_more")
    Project.for_tenant(keep).objects.create(name="kept")
    drop_storage(gone)
    assert Project.for_tenant(keep).objects.get().name == "kept"
    assert storage.schema_exists(keep.db_schema, "default")


def test_a_failure_mid_provisioning_leaves_nothing_half_built(pending, monkeypatch):
    calls = []
    original = ddl.OnDeleteMixin.column_sql

    def failing(self, model, field, include_default=False):
        calls.append(model)
        if len({m for m in calls}) > 3:
            raise RuntimeError("disk full")
        return original(self, model, field, include_default)

    monkeypatch.setattr(ddl.OnDeleteMixin, "column_sql", failing)
    migration_plan().compiled_builds.clear()  # build with the schema editor, not a replay
    with pytest.raises(RuntimeError, match="disk full"):
        build_storage(pending)
    assert not storage.schema_exists(pending.db_schema, "default")
    assert storage.existing_tenant_tables(pending.db_schema, "default") == set()
    monkeypatch.undo()
    assert build_storage(pending) is True


def test_foreign_keys_carry_the_on_delete_action_in_the_database(tenant):
    model = Project.for_tenant(tenant)
    with tenant_schema_editor(connection, collect_sql=True) as editor:
        editor.create_model(model)
    sql = "\n".join(editor.collected_sql)
    assert "ON DELETE SET NULL" in sql  # owner
    assert "ON DELETE CASCADE" in sql  # sponsor


@pytest.mark.postgresql
def test_identifiers_are_quoted_in_ddl(pending):
    assert on_postgresql()
    build_storage(pending)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [pending.db_schema])
        assert cursor.fetchone()[0] >= 10


@pytest.mark.postgresql
def test_a_role_that_is_not_the_tenants_is_never_granted_or_dropped(pending, settings):
    settings.TENANCY_SCHEMA_AUTHORIZATION = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{pending.db_schema}" NOLOGIN')
    try:
        with pytest.raises(ForeignObject, match=f"role '{pending.db_schema}'"):
            build_storage(pending)
        assert not storage.schema_exists(pending.db_schema, "default")  # rolled back whole
        assert ownership.role_owner(pending.db_schema, "default") == (True, None)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP ROLE IF EXISTS "{pending.db_schema}"')


@pytest.mark.postgresql
def test_the_tenants_own_role_is_marked_and_dropped_with_its_schema(pending, settings):
    settings.TENANCY_SCHEMA_AUTHORIZATION = True
    build_storage(pending)
    assert ownership.role_owner(pending.db_schema, "default") == (True, owner_of(pending))
    assert drop_storage(pending)
    assert not ownership.role_owner(pending.db_schema, "default").exists


@pytest.mark.postgresql
def test_later_schemas_replay_the_ddl_recorded_for_the_first(make_tenant):
    migration_plan().compiled_builds.clear()
    first = make_tenant("compiled_first")
    assert migration_plan().compiled_builds["default"]  # recorded while building `first`
    second = make_tenant("compiled_second")
    assert storage.existing_tenant_tables(first.db_schema, "default") == {
        table.replace(second.db_schema, first.db_schema)
        for table in storage.existing_tenant_tables(second.db_schema, "default")
    }
    Project.for_tenant(second).objects.create(name="in a replayed schema")


@pytest.mark.postgresql
def test_a_schema_is_never_named_after_someone_elses_role(pending):
    """Even without per-tenant roles: a role of the schema's name (say, one that appeared
    after the signup, or one on another database's cluster) would find the schema first
    on its search_path."""
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{pending.db_schema}" NOLOGIN')
    try:
        with pytest.raises(ForeignObject, match=f"role '{pending.db_schema}'"):
            build_storage(pending)
        assert not storage.schema_exists(pending.db_schema, "default")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP ROLE IF EXISTS "{pending.db_schema}"')

"""The synchronous provision and drop primitives."""

import pytest
from django.db import connection

from tenancy import migrator, provisioning, storage
from tenancy.ddl import tenant_schema_editor
from tests.conftest import drop_all_tenant_storage, on_postgresql
from tests.testapp.models import Customer, Project


@pytest.fixture
def pending(transactional_db, settings):
    settings.TENANCY_EAGER = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    tenant = Customer.objects.create(name="fresh")
    yield tenant
    drop_all_tenant_storage()


def test_provision_builds_the_storage_once_and_is_idempotent(pending):
    assert not storage.schema_exists(pending.db_schema, "default")
    assert provisioning.provision(pending.db_schema, "default") is True
    assert storage.schema_exists(pending.db_schema, "default")
    tables = storage.existing_tenant_tables(pending.db_schema, "default")
    assert provisioning.provision(pending.db_schema, "default") is False
    assert storage.existing_tenant_tables(pending.db_schema, "default") == tables


def test_drop_removes_the_storage_and_is_idempotent(pending):
    provisioning.provision(pending.db_schema, "default")
    assert provisioning.drop(pending.db_schema, "default") is True
    assert not storage.schema_exists(pending.db_schema, "default")
    assert storage.existing_tenant_tables(pending.db_schema, "default") == set()
    assert provisioning.drop(pending.db_schema, "default") is False


def test_drop_leaves_other_tenants_alone(make_tenant):
    keep, gone = make_tenant("keep"), make_tenant("keep_more")
    Project.for_tenant(keep).objects.create(name="kept")
    provisioning.drop(gone.db_schema, "default")
    assert Project.for_tenant(keep).objects.get().name == "kept"
    assert storage.schema_exists(keep.db_schema, "default")


def test_a_failure_mid_provisioning_leaves_nothing_half_built(pending, monkeypatch):
    from tenancy import ddl

    calls = []
    original = ddl.OnDeleteMixin.column_sql

    def failing(self, model, field, include_default=False):
        calls.append(model)
        if len({m for m in calls}) > 3:
            raise RuntimeError("disk full")
        return original(self, model, field, include_default)

    monkeypatch.setattr(ddl.OnDeleteMixin, "column_sql", failing)
    migrator.plan().compiled_builds.clear()  # build with the schema editor, not a replay
    with pytest.raises(RuntimeError, match="disk full"):
        provisioning.provision(pending.db_schema, "default")
    assert not storage.schema_exists(pending.db_schema, "default")
    assert storage.existing_tenant_tables(pending.db_schema, "default") == set()
    monkeypatch.undo()
    assert provisioning.provision(pending.db_schema, "default") is True


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
    provisioning.provision(pending.db_schema, "default")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [pending.db_schema])
        assert cursor.fetchone()[0] >= 10


@pytest.mark.postgresql
def test_later_schemas_replay_the_ddl_recorded_for_the_first(make_tenant):
    migrator.plan().compiled_builds.clear()
    first = make_tenant("compiled_first")
    assert migrator.plan().compiled_builds["default"]  # recorded while building `first`
    second = make_tenant("compiled_second")
    assert storage.existing_tenant_tables(first.db_schema, "default") == {
        table.replace(second.db_schema, first.db_schema)
        for table in storage.existing_tenant_tables(second.db_schema, "default")
    }
    Project.for_tenant(second).objects.create(name="in a replayed schema")

"""Where tenant tables live, and that tenants never see each other's rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenancy._primitives import storage
from tests.conftest import on_postgresql
from tests.testapp.models import Item, Project, Report


def test_tables_are_schema_qualified_on_postgresql_and_prefixed_elsewhere(tenant):
    table = Project.for_tenant(tenant)._meta.db_table
    if on_postgresql():
        assert table == '"tenant_acme"."testapp_project"'
    else:
        assert table == "tenant_acme__testapp_project"


def test_provisioning_creates_every_table_in_the_tenants_storage(tenant):
    tables = storage.existing_tenant_tables(tenant.db_schema, tenant.database)
    expected = {
        storage.table_name(tenant.db_schema, name, "default")
        for name in [
            "testapp_project",
            "testapp_project_watchers",
            "testapp_report",
            "testapp_item",
            "testapp_item_tags",
            "testapp_specialproject",
            "testapp_membership",
        ]
    }
    assert expected <= tables


@pytest.mark.postgresql
def test_each_tenant_gets_its_own_schema_and_the_shared_schema_gets_no_tenant_table(
    make_tenant,
):
    make_tenant("one"), make_tenant("two")
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_%%'")
        assert {"tenant_one", "tenant_two"} <= {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE "
            "'testapp_%%' AND tablename <> 'testapp_customer'"
        )
        assert cursor.fetchone()[0] == 0


def test_tenants_are_isolated(make_tenant):
    one, two = make_tenant("one"), make_tenant("two")
    Project.for_tenant(one).objects.create(name="only in one")
    assert Project.for_tenant(two).objects.count() == 0
    assert list(Project.for_tenant(one).objects.values_list("name", flat=True)) == ["only in one"]
    project = Project.for_tenant(two).objects.create(name="only in two")
    Report.for_tenant(two).objects.create(project=project)
    assert Report.for_tenant(one).objects.count() == 0


def test_a_tenants_class_refuses_another_tenants_instance(make_tenant):
    one, two = make_tenant("one"), make_tenant("two")
    foreign = Project.for_tenant(one).objects.create(name="p")
    with pytest.raises(ValueError):
        Report.for_tenant(two)(project=foreign)


def test_reading_a_tenant_model_needs_no_extra_query(tenant):
    model = Item.for_tenant(tenant)
    model.objects.count()
    with CaptureQueriesContext(connection) as queries:
        model.objects.count()
    assert len(queries) == 1
    assert "search_path" not in queries[0]["sql"].lower()
    assert tenant.db_schema in queries[0]["sql"]

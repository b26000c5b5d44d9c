"""Big tenants are dropped in batches; tenant schemas can get roles of their own."""

import pytest
from django.db import ProgrammingError, connection, transaction

from tenancy._primitives import storage
from tests import citus_cluster
from tests.support import drop_storage
from tests.testapp.models import Project

pytestmark = pytest.mark.postgresql


def test_a_big_tenant_is_dropped_a_batch_of_tables_per_transaction(tenant, settings):
    settings.TENANCY_DROP_BATCH = 10
    with connection.cursor() as cursor:
        for number in range(35):
            cursor.execute(f'CREATE TABLE "{tenant.db_schema}"."extra_{number}" (id int)')
    statements: list[str] = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert drop_storage(tenant)
    drops = [sql for sql in statements if sql.startswith("DROP TABLE")]
    assert len(drops) >= 3
    assert all(sql.count(", ") <= 9 for sql in drops)  # at most 10 tables each
    assert not storage.schema_exists(tenant.db_schema, "default")


@pytest.mark.skipif(
    citus_cluster.active(),
    reason="Citus: per-tenant roles are refused (check tenancy.E016): they are NOLOGIN, and "
    "Citus connects to the workers as the current role; tests/test_citus.py tests E016",
)
def test_a_tenant_role_reads_its_own_schema_and_no_other(make_tenant, settings):
    settings.TENANCY_SCHEMA_AUTHORIZATION = True
    one, two = make_tenant("private_one"), make_tenant("private_two")
    Project.for_tenant(one).objects.create(name="mine")
    Project.for_tenant(two).objects.create(name="theirs")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL ROLE "{one.db_schema}"')
        cursor.execute(f'SELECT name FROM "{one.db_schema}"."testapp_project"')
        assert cursor.fetchall() == [("mine",)]
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            cursor.execute(f'SELECT name FROM "{two.db_schema}"."testapp_project"')
        transaction.set_rollback(True)
    drop_storage(one)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [one.db_schema])
        assert cursor.fetchone() is None  # the role went with its schema

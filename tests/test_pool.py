"""The warm pool: schemas built ahead of signups, claimed by a rename."""

import pytest
from django.db import connection

from tenancy._migrating.plan import plan as migration_plan
from tenancy._orchestration import pool
from tenancy._primitives import storage
from tenancy.models import PoolSchema, TenantState
from tests.support import drop_raw
from tests.testapp.models import Customer, Project

pytestmark = pytest.mark.postgresql


@pytest.fixture
def pooled(make_tenant, settings):
    settings.TENANCY_POOL_SIZE = 2
    assert pool.refill("default") == 2
    yield
    pool.drain("default")


def _pool_schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenancy_pool_%%'")
        return {row[0] for row in cursor.fetchall()}


def test_refill_builds_pooled_schemas_that_are_not_tenants(pooled):
    names = set(PoolSchema.objects.values_list("name", flat=True))
    assert len(names) == 2 and names == _pool_schemas()
    assert not Customer.objects.exists()
    assert pool.refill("default") == 0  # already full


def test_a_signup_claims_a_pooled_schema_and_the_pool_is_refilled(pooled, make_tenant):
    before = _pool_schemas()
    tenant = make_tenant("pooled")
    assert tenant.state == TenantState.READY
    after = _pool_schemas()
    assert len(before - after) == 1  # one was renamed to the tenant's schema
    assert len(after) == 2  # and the pool refilled (eagerly, in this test)
    Project.for_tenant(tenant).objects.create(name="in a claimed schema")
    assert storage.schema_exists("tenant_pooled", "default")
    assert Project.for_tenant(tenant).objects.count() == 1


def test_a_pooled_schema_at_an_old_migration_state_is_never_handed_out(pooled, make_tenant):
    stale = set(PoolSchema.objects.values_list("name", flat=True))
    PoolSchema.objects.update(digest="old")
    tenant = make_tenant("fresh")
    assert tenant.state == TenantState.READY
    # Provisioned normally; the refill dropped the stale schemas and built current ones.
    assert not (stale & _pool_schemas())
    assert PoolSchema.objects.exclude(digest="old").count() == 2


def test_without_a_pool_nothing_is_built_ahead(make_tenant, settings):
    settings.TENANCY_POOL_SIZE = 0
    make_tenant("plain")
    assert _pool_schemas() == set()


def test_a_pool_entry_whose_schema_is_not_the_pools_is_never_renamed(make_tenant, settings):
    """A pool row that names a schema someone else made (or one whose mark is gone) is
    forgotten, not renamed to a tenant's: the tenant is built normally, the schema stays."""
    settings.TENANCY_POOL_SIZE = 1
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "tenancy_pool_handmade"')
        cursor.execute('CREATE TABLE "tenancy_pool_handmade"."keep" (x int)')
    PoolSchema.objects.create(
        name="tenancy_pool_handmade",
        database="default",
        digest=migration_plan().digest,
        token="a" * 32,
    )
    try:
        tenant = make_tenant("not_from_that_pool")
        assert tenant.state == TenantState.READY
        assert storage.schema_exists("tenancy_pool_handmade", "default")
        assert storage.schema_exists(tenant.db_schema, "default")
        assert not PoolSchema.objects.filter(name="tenancy_pool_handmade").exists()
    finally:
        pool.drain("default")
        drop_raw("tenancy_pool_handmade")

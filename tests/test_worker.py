"""The asynchronous lifecycle through real `celery worker` processes, Redis and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenancy import lifecycle, tasks
from tenancy._delivery import dispatch
from tenancy._primitives import states, storage
from tenancy.exceptions import TenantNotReady
from tenancy.models import TenantState, Tombstone
from tests.conftest import drop_all_tenant_storage
from tests.support import drop_storage
from tests.testapp.models import Customer, Project
from tests.workers import Worker, hold_tenant_ddl, release_tenant_ddl, wait_for

pytestmark = pytest.mark.postgresql


@pytest.fixture
def cleanup(transactional_db):
    schemas = []
    yield schemas
    drop_all_tenant_storage()


def _state(tenant) -> str:
    return Customer.objects.get(pk=tenant.pk).state


def test_create_returns_before_provisioning_and_the_worker_makes_it_ready(async_lifecycle, cleanup):
    with CaptureQueriesContext(connection) as queries:
        tenant = Customer.objects.create(name="signup")
    cleanup.append(tenant.db_schema)
    assert tenant.state == TenantState.PENDING
    assert not any("CREATE SCHEMA" in q["sql"] for q in queries)
    tenant.wait_until_ready(timeout=30)
    assert storage.schema_exists(tenant.db_schema, "default")
    assert Project.for_tenant(tenant).objects.count() == 0


def test_for_tenant_refuses_while_provisioning_then_serves(async_lifecycle, cleanup):
    blocker = hold_tenant_ddl()
    try:
        tenant = Customer.objects.create(name="refused")
        cleanup.append(tenant.db_schema)
        wait_for(lambda: _state(tenant) == TenantState.PROVISIONING, 30, "provisioning")
        with pytest.raises(TenantNotReady, match="provisioning"):
            Project.for_tenant(tenant)
    finally:
        release_tenant_ddl(blocker)
    # The same, stale, instance is served once the worker has finished.
    wait_for(lambda: _state(tenant) == TenantState.READY, 30, "ready")
    assert tenant.state == TenantState.PROVISIONING
    assert Project.for_tenant(tenant).objects.create(name="p").pk


def test_delete_and_queryset_delete_drop_the_schemas(async_lifecycle, cleanup):
    tenants = [Customer.objects.create(name=f"drop{i}") for i in range(3)]
    cleanup.extend(t.db_schema for t in tenants)
    for tenant in tenants:
        tenant.wait_until_ready(timeout=30)
    tenants[0].delete()
    Customer.objects.filter(pk__in=[tenants[1].pk, tenants[2].pk]).delete()
    assert Tombstone.objects.count() == 3
    wait_for(lambda: not Tombstone.objects.filter(done_at__isnull=True).exists(), 30, "the drops")
    for tenant in tenants:
        assert not storage.schema_exists(tenant.db_schema, "default")


def test_bulk_created_tenants_are_provisioned_by_the_reconciler(async_lifecycle, cleanup):
    Customer._base_manager.bulk_create([Customer(name=f"bulk{i}") for i in range(3)])
    assert set(Customer.objects.values_list("state", flat=True)) == {TenantState.PENDING}
    report = lifecycle.reconcile(grace=0)
    assert len(report.pending) == 3
    for tenant in Customer.objects.all():
        tenant.wait_until_ready(timeout=30)
        cleanup.append(tenant.db_schema)
        assert tenant.db_schema == f"tenant_{tenant.name}"


def test_a_task_delivered_twice_provisions_once(async_lifecycle, cleanup):
    worker = async_lifecycle
    finished_before = worker.output().count("succeeded in")
    blocker = hold_tenant_ddl()  # both deliveries arrive while the first is mid-DDL
    try:
        tenant = Customer.objects.create(name="twice")
        cleanup.append(tenant.db_schema)
        dispatch.publish(tasks.provision_tenant, (tenant.pk,))
        dispatch.publish(tasks.provision_tenant, (tenant.pk,))
        wait_for(lambda: _state(tenant) == TenantState.PROVISIONING, 30, "provisioning")
    finally:
        release_tenant_ddl(blocker)
    tenant.wait_until_ready(timeout=30)
    wait_for(
        lambda: worker.output().count("succeeded in") >= finished_before + 3,
        30,
        "all three deliveries to finish",
    )
    assert worker.event_lines().count(f"provisioned {tenant.db_schema}") == 1


def test_a_worker_killed_mid_provisioning_leaves_nothing_half_built(
    broker, transactional_db, settings, cleanup
):
    killed = Worker(broker.url, "tenancy-tests-kill", concurrency=1).start()
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = killed.queue
    blocker = hold_tenant_ddl()
    try:
        tenant = Customer.objects.create(name="killed")
        cleanup.append(tenant.db_schema)
        wait_for(lambda: _state(tenant) == TenantState.PROVISIONING, 30, "provisioning")
        killed.kill()  # SIGKILL, parent and pool children, mid-transaction
    finally:
        release_tenant_ddl(blocker)
    wait_for(lambda: not states.held_by_worker(tenant, "default"), 30, "the lock to die")
    assert not storage.schema_exists(tenant.db_schema, "default")
    assert _state(tenant) == TenantState.PROVISIONING
    survivor = Worker(broker.url, killed.queue, concurrency=1).start()
    try:
        report = lifecycle.reconcile(grace=0)
        assert report.stuck == [tenant.pk]
        tenant.wait_until_ready(timeout=30)
    finally:
        survivor.stop()
    assert storage.schema_exists(tenant.db_schema, "default")


def test_a_transient_error_is_retried_then_the_tenant_fails_with_its_error(
    broker, transactional_db, settings
):
    flaky = Worker(
        broker.url,
        "tenancy-tests-retry",
        concurrency=1,
        TENANCY_MAX_RETRIES="2",
        TENANCY_RETRY_BACKOFF="0.05",
    ).start()
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = flaky.queue
    settings.TENANCY_DATABASES = ["default", "unreachable"]
    try:
        tenant = Customer.objects.create(name="unlucky", database="unreachable")
        with pytest.raises(TenantNotReady, match="OperationalError"):
            tenant.wait_until_ready(timeout=60)
    finally:
        flaky.stop()
    tenant.refresh_from_db()
    assert tenant.state == TenantState.FAILED
    assert "OperationalError" in tenant.last_error
    assert flaky.output().count("Retry in") == 2


def test_a_failed_tenant_can_be_retried(broker, async_lifecycle, cleanup):
    tenant = Customer.objects.create(name="again")
    cleanup.append(tenant.db_schema)
    tenant.wait_until_ready(timeout=30)
    Customer.objects.filter(pk=tenant.pk).update(state=TenantState.FAILED, last_error="x")
    drop_storage(tenant)
    tenant.refresh_from_db()
    lifecycle.retry(tenant)
    tenant.wait_until_ready(timeout=30)
    assert storage.schema_exists(tenant.db_schema, "default")


def test_a_broker_down_at_signup_neither_fails_nor_hangs_it(broker, async_lifecycle, cleanup):
    broker.stop()
    outcome: dict[str, object] = {}

    def signup() -> None:
        try:
            outcome["tenant"] = Customer.objects.create(name="outage")
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            outcome["error"] = exc
        finally:
            connection.close()

    try:
        thread = threading.Thread(target=signup)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the signup hung while the broker was down"
        assert "error" not in outcome, outcome
    finally:
        broker.start()
    tenant = outcome["tenant"]
    cleanup.append(tenant.db_schema)
    assert _state(tenant) == TenantState.PENDING
    lifecycle.reconcile(grace=0)
    tenant.wait_until_ready(timeout=60)

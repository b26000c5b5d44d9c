"""The lifecycle in eager mode (TENANCY_EAGER): create provisions, delete drops."""

import pytest
from celery.signals import task_prerun

from tenancy._primitives import storage
from tenancy.exceptions import TenantNotReady
from tenancy.models import TenantState
from tests.testapp.models import Customer, Project


def test_create_provisions_inline_and_the_tenant_is_ready(make_tenant):
    tenant = make_tenant("inline")
    assert tenant.state == TenantState.READY and tenant.is_ready
    assert storage.schema_exists(tenant.db_schema, tenant.database)
    assert tenant.wait_until_ready(timeout=1) is tenant


def test_delete_drops_the_schema(make_tenant):
    tenant = make_tenant("doomed")
    Project.for_tenant(tenant).objects.create(name="data")
    tenant.delete()
    assert not storage.schema_exists("tenant_doomed", "default")


def test_queryset_delete_drops_every_schema(make_tenant):
    make_tenant("q1"), make_tenant("q2")
    Customer.objects.filter(name__in=["q1", "q2"]).delete()
    assert not storage.schema_exists("tenant_q1", "default")
    assert not storage.schema_exists("tenant_q2", "default")


@pytest.mark.django_db(transaction=True)
def test_for_tenant_refuses_a_tenant_that_is_not_ready(settings):
    settings.TENANCY_EAGER = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    Customer._base_manager.bulk_create([Customer(name="waiting", db_schema="tenant_waiting")])
    tenant = Customer.objects.get(name="waiting")  # no signals were sent: still pending
    with pytest.raises(TenantNotReady, match="not ready.*wait_until_ready"):
        Project.for_tenant(tenant)


@pytest.mark.django_db(transaction=True)
def test_for_tenant_rereads_a_stale_instance_before_refusing(make_tenant):
    tenant = make_tenant("stale")
    stale = Customer.objects.get(pk=tenant.pk)
    stale.state = TenantState.PENDING  # as read before a worker finished
    assert Project.for_tenant(stale).objects.count() == 0


def test_wait_until_ready_raises_with_the_error_of_a_failed_tenant(make_tenant):
    tenant = make_tenant("broken")
    Customer.objects.filter(pk=tenant.pk).update(state=TenantState.FAILED, last_error="boom")
    with pytest.raises(TenantNotReady, match="boom"):
        tenant.wait_until_ready(timeout=1)


def test_wait_until_ready_times_out_with_a_hint(make_tenant):
    tenant = make_tenant("slow")
    Customer.objects.filter(pk=tenant.pk).update(state=TenantState.PENDING)
    with pytest.raises(TenantNotReady, match="worker"):
        tenant.wait_until_ready(timeout=0.1)


def test_a_failing_provisioned_receiver_cannot_undo_a_ready_tenant(make_tenant, caplog):
    from tenancy.signals import tenant_provisioned

    def explode(sender, tenant, **kwargs):
        raise RuntimeError("welcome e-mail server down")

    tenant_provisioned.connect(explode)
    try:
        tenant = make_tenant("welcomed")
    finally:
        tenant_provisioned.disconnect(explode)
    assert tenant.state == TenantState.READY
    assert storage.schema_exists(tenant.db_schema, tenant.database)
    assert "welcome e-mail server down" in caplog.text


def test_lifecycle_signals_carry_the_tenant(make_tenant):
    from tenancy.signals import tenant_dropped, tenant_provisioned

    seen = []

    def provisioned(sender, tenant, **kwargs):
        seen.append(("provisioned", sender, tenant.db_schema))

    def dropped(sender, schema, database, **kwargs):
        seen.append(("dropped", sender, schema))

    tenant_provisioned.connect(provisioned)
    tenant_dropped.connect(dropped)
    try:
        make_tenant("signalled").delete()
    finally:
        tenant_provisioned.disconnect(provisioned)
        tenant_dropped.disconnect(dropped)
    assert seen == [
        ("provisioned", Customer, "tenant_signalled"),
        ("dropped", Customer, "tenant_signalled"),
    ]


def test_eager_mode_runs_the_celery_tasks_themselves(make_tenant):
    """TENANCY_EAGER runs the same task code as a worker (Celery's apply()), not a copy
    of it: the task's own signals fire, with the task's name."""
    ran = []

    def record(sender=None, task=None, **kwargs):
        ran.append(task.name)

    task_prerun.connect(record, weak=False)
    try:
        tenant = make_tenant("through_celery")
        tenant.delete()
    finally:
        task_prerun.disconnect(record)
    assert ran == ["tenancy.provision_tenant", "tenancy.drop_tenant"]


@pytest.mark.django_db(transaction=True)
def test_an_eager_failure_is_kept_on_the_tenant_not_raised_into_the_signup(monkeypatch):
    """As with a worker: the signup returns, the tenant is failed with its error."""

    def broken(schema, using, owner, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("tenancy._orchestration.building.build", broken)
    tenant = Customer.objects.create(name="unlucky")
    tenant.refresh_from_db()
    assert tenant.state == TenantState.FAILED and "disk full" in tenant.last_error

"""The management commands: createtenant, tenancy_status and tenancy_reconcile (eager mode)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tenancy._migrating.plan import plan as migration_plan
from tenancy._orchestration import building
from tenancy._primitives import storage
from tenancy.models import TenantState, Tombstone
from tests import citus_cluster
from tests.conftest import drop_all_tenant_storage
from tests.support import drop_storage
from tests.testapp.models import Customer


@pytest.fixture
def storage_dropped(transactional_db):
    """For tenants a command creates: drop their storage before the database is flushed."""
    yield
    drop_all_tenant_storage()


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


# createtenant


def test_createtenant_creates_a_ready_tenant_and_prints_its_schema(storage_dropped):
    output = run("createtenant", "name=acme")
    tenant = Customer.objects.get(name="acme")
    assert tenant.state == TenantState.READY
    assert storage.schema_exists("tenant_acme", "default")
    assert "acme" in output and "tenant_acme" in output and "ready" in output


def test_createtenant_waits_for_the_tenant_when_asked(storage_dropped):
    output = run("createtenant", "name=patient", "--wait", "5")
    assert "ready" in output and Customer.objects.get(name="patient").is_ready


def test_createtenant_prints_a_json_object_with_json(storage_dropped):
    document = json.loads(run("createtenant", "name=acme", "--json"))
    assert document["natural_key"] == ["acme"]
    assert document["schema"] == "tenant_acme"
    assert document["database"] == "default"
    assert document["state"] == "ready"


def test_createtenant_accepts_the_database_alias(storage_dropped):
    run("createtenant", "name=placed", "database=default")
    assert Customer.objects.get(name="placed").database == "default"


def test_createtenant_refuses_an_unknown_field_and_lists_the_valid_ones(db):
    with pytest.raises(
        CommandError, match=r"no settable field 'nmae'.*valid fields: database, name"
    ):
        run("createtenant", "nmae=acme")
    assert not Customer.objects.exists()


def test_createtenant_refuses_lifecycle_fields_other_than_database(db):
    for pair in ("state=ready", "db_schema=tenant_x", "last_error=x"):
        with pytest.raises(CommandError, match="no settable field"):
            run("createtenant", "name=acme", pair)
    assert not Customer.objects.exists()


def test_createtenant_refuses_a_key_that_names_no_schema(db):
    with pytest.raises(CommandError, match=r"natural key: Invalid tenant key \('\?\?\?',\)"):
        run("createtenant", "name=???")
    assert not Customer.objects.exists()


def test_createtenant_refuses_a_name_already_taken(make_tenant):
    make_tenant("acme")
    with pytest.raises(CommandError, match="name: Customer with this Name already exists"):
        run("createtenant", "name=acme")
    assert Customer.objects.count() == 1


def test_createtenant_refuses_an_unknown_database_alias(db):
    with pytest.raises(CommandError, match="alias 'nowhere' is not in DATABASES"):
        run("createtenant", "name=acme", "database=nowhere")
    assert not Customer.objects.exists()


def test_createtenant_refuses_an_argument_without_equals_sign(db):
    with pytest.raises(CommandError, match="Expected FIELD=VALUE, not 'acme'"):
        run("createtenant", "acme")


def test_createtenant_explains_wait_placed_before_the_fields(db):
    with pytest.raises(CommandError, match="put --wait after the FIELD=VALUE pairs"):
        run("createtenant", "--wait", "name=acme")


def test_createtenant_exits_non_zero_with_the_provisioning_error(storage_dropped, monkeypatch):
    def broken(schema, using, owner, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(building, "build", broken)
    with pytest.raises(CommandError, match="disk full") as raised:
        run("createtenant", "name=unlucky", "--wait", "5")
    assert raised.value.returncode != 0
    assert Customer.objects.get(name="unlucky").state == TenantState.FAILED


# tenancy_status


def fail(tenant, error: str) -> None:
    Customer.objects.filter(pk=tenant.pk).update(state=TenantState.FAILED, last_error=error)


def test_status_lists_every_tenant_and_the_totals_per_state(make_tenant):
    make_tenant("alpha"), fail(make_tenant("beta"), "RuntimeError: disk full")
    make_tenant("gamma")
    Customer.objects.filter(name="gamma").update(migrations_digest="old")
    applied = str(migration_plan().keys.__len__())
    lines = run("tenancy_status").splitlines()
    # On Citus, each tenant's node and size follow its database (tests/test_citus.py).
    citus_columns = ["NODE", "SIZE"] if citus_cluster.active() else []
    assert lines[0].split() == [
        *["KEY", "SCHEMA", "DATABASE", *citus_columns, "STATE", "MIGRATIONS", "LAST", "ERROR"]
    ]

    def cells(line: str) -> list[str]:
        words = line.split()
        return words[:3] + words[6:] if citus_columns else words  # SIZE is "120 kB"

    assert cells(lines[1]) == ["alpha", "tenant_alpha", "default", "ready", applied]
    assert cells(lines[2])[:5] == ["beta", "tenant_beta", "default", "failed", applied]
    assert cells(lines[3]) == ["gamma", "tenant_gamma", "default", "ready", applied, "(behind)"]
    assert lines[2].endswith("RuntimeError: disk full")
    assert lines[-1] == (
        "3 tenants: 0 pending, 0 provisioning, 2 ready, 1 failed; drops not done: 0"
    )


def test_status_filters_by_state_but_totals_every_tenant(make_tenant):
    make_tenant("alpha"), fail(make_tenant("beta"), "boom")
    output = run("tenancy_status", "--state", "failed")
    assert "tenant_beta" in output and "tenant_alpha" not in output
    assert "2 tenants: 0 pending, 0 provisioning, 1 ready, 1 failed" in output


def test_status_shortens_a_long_error_to_one_line(make_tenant):
    fail(make_tenant("beta"), "OperationalError: " + "x" * 200 + "\nsecond line")
    row = run("tenancy_status").splitlines()[1]
    assert row.endswith("...") and "second line" not in row and len(row) < 150


def test_status_counts_drops_not_done_yet(make_tenant):
    make_tenant("alpha")
    Tombstone.objects.create(schema="tenant_gone", database="default", tenant_pk="99")
    assert run("tenancy_status").splitlines()[-1].endswith("drops not done: 1")


def test_status_prints_a_json_document_with_a_failed_tenants_whole_error(make_tenant):
    make_tenant("alpha")
    fail(make_tenant("beta"), "RuntimeError: " + "y" * 100)
    document = json.loads(run("tenancy_status", "--json"))
    assert [t["natural_key"] for t in document["tenants"]] == [["alpha"], ["beta"]]
    beta = document["tenants"][1]
    assert beta["state"] == "failed" and beta["last_error"] == "RuntimeError: " + "y" * 100
    assert beta["migrations"] == str(len(migration_plan().keys))
    assert document["totals"] == {"pending": 0, "provisioning": 0, "ready": 1, "failed": 1}
    assert document["pending_drops"] == 0


def test_status_of_no_tenants_prints_zero_totals(db):
    assert run("tenancy_status").splitlines()[-1] == (
        "0 tenants: 0 pending, 0 provisioning, 0 ready, 0 failed; drops not done: 0"
    )


# tenancy_reconcile


def test_reconcile_provisions_a_bulk_created_tenant_past_the_grace(storage_dropped):
    Customer._base_manager.bulk_create([Customer(name="bulk")])  # as raw SQL would: stays pending
    pk = Customer.objects.get(name="bulk").pk
    output = run("tenancy_reconcile", "--grace", "0", verbosity=2)
    assert "re-enqueued 1 pending" in output
    assert f"pending: {pk}" in output
    tenant = Customer.objects.get(pk=pk)
    assert tenant.state == TenantState.READY
    assert storage.schema_exists(tenant.db_schema, tenant.database)


def test_reconcile_with_a_grace_spares_a_young_pending_tenant_and_says_so(
    storage_dropped, settings, broker
):
    settings.TENANCY_EAGER = False  # its task waits in a queue nobody consumes
    settings.TENANCY_CELERY_QUEUE = f"nobody-listens-{id(settings)}"
    Customer.objects.create(name="fresh")
    settings.TENANCY_EAGER = True
    output = run("tenancy_reconcile", "--grace", "60")
    assert "re-enqueued 0 pending" in output
    assert "left alone: 1 pending tenant(s) younger than the 60 s grace" in output
    assert "--grace 0" in output
    assert Customer.objects.get(name="fresh").state == TenantState.PENDING


def test_reconcile_acts_at_once_on_rows_that_were_never_named(storage_dropped):
    """No task was ever sent for a row written without the library: no grace applies."""
    Customer._base_manager.bulk_create([Customer(name="fresh")])
    assert "re-enqueued 1 pending" in run("tenancy_reconcile", "--grace", "60")
    assert Customer.objects.get(name="fresh").state == TenantState.READY


def test_reconcile_prints_the_report_as_json(storage_dropped):
    Customer._base_manager.bulk_create([Customer(name="bulk")])
    document = json.loads(run("tenancy_reconcile", "--grace", "0", "--json"))
    assert document["pending"] == [Customer.objects.get(name="bulk").pk]
    assert document["stuck"] == [] and document["tombstones"] == []
    assert document["retried"] == []


def test_reconcile_leaves_failed_tenants_alone_without_retry_failed(make_tenant):
    tenant = make_tenant("broken")
    fail(tenant, "boom")
    run("tenancy_reconcile", "--grace", "0")
    assert Customer.objects.get(pk=tenant.pk).state == TenantState.FAILED


def test_reconcile_with_retry_failed_provisions_a_failed_tenant_again(make_tenant):
    tenant = make_tenant("broken")
    fail(tenant, "boom")
    drop_storage(tenant)
    output = run("tenancy_reconcile", "--retry-failed", verbosity=2)
    assert "retried 1 failed (0 failed again)" in output
    assert f"retried: {tenant.pk}" in output
    tenant.refresh_from_db()
    assert tenant.state == TenantState.READY and tenant.last_error == ""
    assert storage.schema_exists(tenant.db_schema, tenant.database)


def test_reconcile_reports_a_retry_that_fails_again_and_goes_on(make_tenant, monkeypatch):
    first, second = make_tenant("first"), make_tenant("second")
    for tenant in (first, second):
        fail(tenant, "boom")
        drop_storage(tenant)
    real = building.build

    def broken_for_first(schema, using, owner, **kwargs):
        if schema == first.db_schema:
            raise RuntimeError("still broken")
        return real(schema, using, owner, **kwargs)

    monkeypatch.setattr(building, "build", broken_for_first)
    err = io.StringIO()
    call_command("tenancy_reconcile", "--retry-failed", stdout=io.StringIO(), stderr=err)
    assert "still broken" in err.getvalue()
    assert Customer.objects.get(pk=first.pk).state == TenantState.FAILED
    assert Customer.objects.get(pk=second.pk).state == TenantState.READY


def test_tenancy_migrate_waits_a_finite_time_by_default():
    from tenancy.management.commands.tenancy_migrate import Command

    parser = Command().create_parser("manage.py", "tenancy_migrate")
    timeout = parser.parse_args([]).timeout
    assert timeout is not None and 0 < timeout <= 24 * 3600

"""The tenant admin (tenancy.admin) through Django's test client, eager lifecycle."""

from __future__ import annotations

import re

from django.contrib import admin
from django.urls import reverse

from tenancy import tasks
from tenancy._delivery import dispatch
from tenancy._migrating.plan import plan as migration_plan
from tenancy._primitives import storage
from tenancy.admin import TenantAdmin, natural_key_fields
from tenancy.models import TenantState, Tombstone
from tests.testapp.models import Customer

CHANGELIST = "admin:testapp_customer_changelist"


def changelist(client, **params):
    return client.get(reverse(CHANGELIST), params)


def badge(html: str, state: str) -> re.Match | None:
    return re.search(
        rf'<span class="tenancy-state tenancy-state-{state}"[^>]*>{state}</span>', html
    )


def failed_tenant(name: str, error: str = "OperationalError: connection refused", **fields):
    """A tenant whose provisioning failed before its storage was built."""
    fields.setdefault("database", "default")
    tenant = Customer(name=name, state=TenantState.FAILED, last_error=error, **fields)
    tenant.db_schema = tenant.derive_schema()
    Customer._base_manager.bulk_create([tenant])  # as raw SQL would: nothing is provisioned
    return Customer.objects.get(name=name)


def run_action(client, action: str, *tenants, **params):
    data = {"action": action, "_selected_action": [t.pk for t in tenants], **params}
    return client.post(reverse(CHANGELIST), data, follow=True)


def fake_dispatch(monkeypatch, *, sent: bool = True) -> list:
    """Record what would go to the broker (as with a worker, TENANCY_EAGER off)."""
    calls = []

    def publish(task, args, **options):
        calls.append((task, args, options))
        return sent

    monkeypatch.setattr(dispatch, "publish", publish)
    return calls


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_test_project_registers_the_tenant_model_with_tenant_admin():
    assert isinstance(admin.site._registry[Customer], TenantAdmin)
    assert admin.site.is_registered(Tombstone)


def test_search_fields_default_to_the_unique_text_fields_of_the_tenant_model():
    assert natural_key_fields(Customer) == ("name", "db_schema")


def test_changelist_shows_key_schema_database_and_a_coloured_state_badge(make_tenant, admin_client):
    ready = make_tenant("acme")
    failed_tenant("broken")
    Customer._base_manager.bulk_create([Customer(name="waiting", db_schema="tenant_waiting")])
    Customer.objects.filter(name="waiting").update(state=TenantState.PENDING)
    html = changelist(admin_client).content.decode()
    assert ">acme</a>" in html and ready.db_schema in html
    assert '<span class="tenancy-database"' in html and ">on default</span>" in html
    assert "#2e7d32" in badge(html, "ready").group(0)  # green
    assert "#c62828" in badge(html, "failed").group(0)  # red
    assert "#f0a202" in badge(html, "pending").group(0)  # amber
    for column in ("key", "schema", "state", "migrations", "last error"):
        assert f">{column.capitalize()}</a>" in html or f">{column.capitalize()}</span>" in html


def test_changelist_marks_tenants_behind_the_current_migrations(make_tenant, admin_client):
    current = make_tenant("current")
    old = make_tenant("old")
    Customer.objects.filter(pk=old.pk).update(migrations_digest="0" * 32)
    html = changelist(admin_client).content.decode()
    applied = re.findall(r'<td class="field-applied_migrations">(.*?)</td>', html)
    assert len(applied) == 2
    assert sum("behind" in cell for cell in applied) == 1
    assert current.migrations_digest == migration_plan().digest
    assert str(current.migrations_applied) in applied[0] + applied[1]


def test_changelist_shortens_the_last_error_and_keeps_it_whole_in_the_tooltip(
    make_tenant, admin_client
):
    make_tenant("ok")
    error = "OperationalError: " + "x" * 300
    failed_tenant("broken", error=error)
    html = changelist(admin_client).content.decode()
    cell = re.search(r'<span class="tenancy-error" title="([^"]*)"[^>]*>([^<]*)</span>', html)
    assert cell.group(1) == error
    assert len(cell.group(2)) <= 60 and cell.group(2).endswith("…")


def test_changelist_filters_by_state_and_database(make_tenant, admin_client):
    make_tenant("acme")
    failed_tenant("broken")
    failed_tenant("elsewhere", database="archive")
    html = changelist(admin_client).content.decode()
    assert 'id="changelist-filter"' in html
    assert "?state__exact=failed" in html and "?database=archive" in html

    failed = changelist(admin_client, state__exact="failed").content.decode()
    assert ">broken</a>" in failed and ">elsewhere</a>" in failed and ">acme</a>" not in failed

    archive = changelist(admin_client, database="archive").content.decode()
    assert ">elsewhere</a>" in archive and ">broken</a>" not in archive


def test_search_finds_tenants_by_their_natural_key_and_schema(make_tenant, admin_client):
    make_tenant("acme")
    make_tenant("globex")
    by_key = changelist(admin_client, q="glob").content.decode()
    assert ">globex</a>" in by_key and ">acme</a>" not in by_key
    by_schema = changelist(admin_client, q="tenant_acme").content.decode()
    assert ">acme</a>" in by_schema and ">globex</a>" not in by_schema


def test_lifecycle_fields_are_read_only_on_the_change_form(make_tenant, admin_client):
    tenant = make_tenant("acme")
    url = reverse("admin:testapp_customer_change", args=[tenant.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="name"' in html
    for field in ("state", "db_schema", "database", "last_error", "migrations_digest"):
        assert f'name="{field}"' not in html
    assert tenant.db_schema in html and badge(html, "ready")

    admin_client.post(url, {"name": "acme", "state": "failed", "database": "other"})
    tenant.refresh_from_db()
    assert (tenant.state, tenant.database) == (TenantState.READY, "default")


def test_the_add_form_asks_only_for_the_key(transactional_db, admin_client):
    html = admin_client.get(reverse("admin:testapp_customer_add")).content.decode()
    assert 'name="name"' in html and "tenancy-state" not in html


def test_adding_a_tenant_in_the_admin_provisions_it(make_tenant, admin_client):
    admin_client.post(reverse("admin:testapp_customer_add"), {"name": "newco"})
    tenant = Customer.objects.get(name="newco")
    assert tenant.state == TenantState.READY
    assert storage.schema_exists(tenant.db_schema, tenant.database)


def test_retry_provisioning_provisions_a_failed_tenant(make_tenant, admin_client):
    make_tenant("acme")
    tenant = failed_tenant("broken")
    assert not storage.schema_exists(tenant.db_schema, tenant.database)

    response = run_action(admin_client, "retry_provisioning", tenant)

    tenant.refresh_from_db()
    assert tenant.state == TenantState.READY and tenant.last_error == ""
    assert storage.schema_exists(tenant.db_schema, tenant.database)
    assert messages_of(response) == ["Provisioned 1 tenant(s): broken."]
    assert badge(response.content.decode(), "ready")


def test_retry_provisioning_skips_ready_tenants_and_says_so(make_tenant, admin_client, monkeypatch):
    tenant = make_tenant("acme")
    calls = []
    monkeypatch.setattr("tenancy.admin.retry", calls.append)
    response = run_action(admin_client, "retry_provisioning", tenant)
    assert calls == []
    assert messages_of(response) == [
        "Skipped 1 tenant(s) that are neither failed nor pending: acme (ready)."
    ]


def test_retry_provisioning_reports_a_tenant_that_fails_again(
    make_tenant, admin_client, monkeypatch
):
    make_tenant("acme")
    tenant = failed_tenant("broken")

    def refuse(schema, database, owner, **kwargs):
        raise ValueError("disk full")

    monkeypatch.setattr("tenancy._orchestration.building.build", refuse)
    response = run_action(admin_client, "retry_provisioning", tenant)
    assert response.status_code == 200
    tenant.refresh_from_db()
    assert tenant.state == TenantState.FAILED and "disk full" in tenant.last_error
    [message] = messages_of(response)
    assert (
        message.startswith("Provisioning failed for 1 tenant(s): broken (")
        and "disk full" in message
    )


def test_retry_provisioning_with_a_worker_queues_the_tenant(
    make_tenant, admin_client, settings, monkeypatch
):
    make_tenant("acme")
    tenant = failed_tenant("broken")
    settings.TENANCY_EAGER = False
    sent = fake_dispatch(monkeypatch)
    response = run_action(admin_client, "retry_provisioning", tenant)
    assert [(task, args) for task, args, _ in sent] == [(tasks.provision_tenant, (tenant.pk,))]
    tenant.refresh_from_db()
    assert tenant.state == TenantState.PENDING
    assert messages_of(response) == [
        "Queued the provisioning of 1 tenant(s) for the workers: broken."
    ]


def test_migrate_now_brings_a_tenant_behind_to_the_current_migrations(make_tenant, admin_client):
    tenant = make_tenant("acme")
    Customer.objects.filter(pk=tenant.pk).update(migrations_digest="", migrations_applied=0)

    response = run_action(admin_client, "migrate_now", tenant)

    tenant.refresh_from_db()
    assert tenant.migrations_digest == migration_plan().digest
    assert tenant.state == TenantState.READY
    assert messages_of(response) == ["Migrated 1 tenant(s) to the current migrations: acme."]
    assert "behind" not in response.content.decode()


def test_migrate_now_sends_one_migrate_task_per_tenant(
    make_tenant, admin_client, settings, monkeypatch
):
    first, second = make_tenant("acme"), make_tenant("globex")
    pending = failed_tenant("later")
    Customer.objects.filter(pk=pending.pk).update(state=TenantState.PENDING)
    settings.TENANCY_EAGER = False
    sent = fake_dispatch(monkeypatch)

    response = run_action(admin_client, "migrate_now", first, second, pending)

    assert sorted(sent, key=lambda call: call[1]) == [
        (tasks.migrate_tenant, (first.pk,), {"database": "default"}),
        (tasks.migrate_tenant, (second.pk,), {"database": "default"}),
    ]
    assert messages_of(response) == [
        "Sent the migration of 2 tenant(s) to the workers: acme, globex.",
        "Skipped 1 tenant(s) not provisioned yet (provisioning builds the current migrations): "
        "later (pending).",
    ]


def test_migrate_now_says_when_the_broker_is_unreachable(
    make_tenant, admin_client, settings, monkeypatch
):
    tenant = make_tenant("acme")
    settings.TENANCY_EAGER = False
    fake_dispatch(monkeypatch, sent=False)
    response = run_action(admin_client, "migrate_now", tenant)
    [message] = messages_of(response)
    assert message.startswith("Could not reach the broker for 1 tenant(s)") and "acme" in message


def test_delete_confirmation_names_the_schema_that_will_be_dropped(make_tenant, admin_client):
    tenant = make_tenant("acme")
    url = reverse("admin:testapp_customer_delete", args=[tenant.pk])
    html = admin_client.get(url).content.decode()
    warning = re.search(r'<div class="tenancy-drop-warning".*?</div>', html, re.S).group(0)
    assert "all the data" in warning and "cannot be undone" in warning
    if storage.uses_schemas_alias("default"):
        assert "the schema &quot;tenant_acme&quot; on database &quot;default&quot;" in warning
    else:
        assert "every table prefixed &quot;tenant_acme__&quot;" in warning
    assert "will be dropped with all its" in warning
    assert storage.schema_exists(tenant.db_schema, tenant.database)  # nothing dropped yet


def test_confirming_the_delete_drops_the_schema(make_tenant, admin_client):
    tenant = make_tenant("acme")
    url = reverse("admin:testapp_customer_delete", args=[tenant.pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert not Customer.objects.filter(pk=tenant.pk).exists()
    assert not storage.schema_exists("tenant_acme", "default")
    assert Tombstone.objects.get(schema="tenant_acme").done_at is not None
    assert "Dropped 1 schema(s) with all their data: tenant_acme on default." in messages_of(
        response
    )


def test_bulk_delete_confirmation_names_every_schema_and_confirming_drops_them(
    make_tenant, admin_client
):
    first, second, kept = make_tenant("acme"), make_tenant("globex"), make_tenant("kept")
    page = run_action(admin_client, "delete_selected", first, second).content.decode()
    warning = re.search(r'<div class="tenancy-drop-warning".*?</div>', page, re.S).group(0)
    assert "these 2 tenants" in warning
    assert "tenant_acme" in warning and "tenant_globex" in warning and "tenant_kept" not in warning
    assert storage.schema_exists("tenant_acme", "default")

    response = run_action(admin_client, "delete_selected", first, second, post="yes")

    assert list(Customer.objects.values_list("name", flat=True)) == ["kept"]
    assert not storage.schema_exists("tenant_acme", "default")
    assert not storage.schema_exists("tenant_globex", "default")
    assert storage.schema_exists(kept.db_schema, "default")
    text = " | ".join(messages_of(response))
    assert "Dropped 2 schema(s) with all their data" in text
    assert "tenant_acme on default" in text and "tenant_globex on default" in text


def test_delete_with_a_worker_says_the_drop_is_queued(
    make_tenant, admin_client, settings, monkeypatch
):
    tenant = make_tenant("acme")
    settings.TENANCY_EAGER = False
    fake_dispatch(monkeypatch)
    url = reverse("admin:testapp_customer_delete", args=[tenant.pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert storage.schema_exists("tenant_acme", "default")  # left to the worker
    assert any("Queued the drop of 1 schema(s)" in m for m in messages_of(response))


def test_the_bulk_delete_action_says_it_drops_schemas(make_tenant, admin_client):
    make_tenant("acme")
    html = changelist(admin_client).content.decode()
    assert "Delete selected customers and drop their schemas" in html
    assert ">Retry provisioning</option>" in html and ">Migrate now</option>" in html


def test_tombstones_are_listed_read_only(make_tenant, admin_client):
    make_tenant("acme").delete()
    html = admin_client.get(reverse("admin:tenancy_tombstone_changelist")).content.decode()
    assert "tenant_acme" in html and "dropped" in html
    assert admin_client.get(reverse("admin:tenancy_tombstone_add")).status_code == 403
    tomb = Tombstone.objects.get()
    change = admin_client.get(reverse("admin:tenancy_tombstone_change", args=[tomb.pk]))
    assert change.status_code == 200 and 'name="schema"' not in change.content.decode()
    delete = reverse("admin:tenancy_tombstone_delete", args=[tomb.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403

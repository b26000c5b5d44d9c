"""Every lifecycle log line names the tenant, its schema and the Celery task."""

import logging

from tenancy import tasks
from tests.testapp.models import Customer


def test_task_log_lines_carry_the_tenant_schema_and_task_id(transactional_db, settings, caplog):
    settings.TENANCY_EAGER = False
    Customer._base_manager.bulk_create([Customer(name="logged")])  # as raw SQL: nothing sent
    pk = Customer.objects.get(name="logged").pk
    settings.TENANCY_EAGER = True
    try:
        with caplog.at_level(logging.INFO, logger="tenancy"):
            tasks.provision_tenant.apply(args=[pk], task_id="task-123")
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("tenancy")]
        provisioned = [line for line in lines if "provisioned in" in line]
        assert provisioned, lines
        assert provisioned[0].startswith(
            "[tenant=logged schema=tenant_logged database=default task=task-123] provisioned in"
        )
        record = next(r for r in caplog.records if "provisioned in" in r.getMessage())
        assert record.tenancy["task"] == "task-123"
    finally:
        from tests.conftest import drop_all_tenant_storage

        drop_all_tenant_storage()

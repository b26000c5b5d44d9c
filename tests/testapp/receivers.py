"""Receivers connected to templates, which tenant classes must inherit."""

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from tenancy.signals import tenant_dropped, tenant_provisioned
from tests.testapp.models import Project

calls: list[tuple[str, object]] = []


@receiver(post_save, sender=Project)
def project_saved(sender, instance, created, **kwargs):
    calls.append(("post_save", instance))


@receiver(pre_delete, sender=Project, dispatch_uid="testapp.project_deleting")
def project_deleting(sender, instance, **kwargs):
    calls.append(("pre_delete", instance))


def _record(event: str, **kwargs) -> None:
    """Append a lifecycle event to the file named by TENANCY_TEST_EVENTS (worker processes)."""
    import os

    path = os.environ.get("TENANCY_TEST_EVENTS")
    if path:
        with open(path, "a") as events:
            events.write(f"{event} {kwargs.get('tenant') or kwargs.get('schema')}\n")


@receiver(tenant_provisioned)
def provisioned(sender, tenant, **kwargs):
    _record("provisioned", tenant=tenant.db_schema)


@receiver(tenant_dropped)
def dropped(sender, schema, **kwargs):
    _record("dropped", schema=schema)

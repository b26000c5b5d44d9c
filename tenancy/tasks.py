"""Celery tasks: thin adapters over :mod:`tenancy.lifecycle`.

Defined with ``shared_task`` so the host project's Celery app picks them up.
Task names are stable (``tenancy.<name>``) for monitoring.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from tenancy import lifecycle

TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="tenancy.provision_tenant", **TASK_OPTIONS)
def provision_tenant(pk: Any) -> str | None:
    """Provision one tenant by primary key."""
    tenant = lifecycle.provision_tenant(pk)
    return None if tenant is None else tenant.state


@shared_task(name="tenancy.drop_tenant", **TASK_OPTIONS)
def drop_tenant(schema: str, database: str) -> bool:
    """Drop a deleted tenant's schema."""
    return lifecycle.drop_tenant_storage(schema, database)

"""The tenant lifecycle as plain functions: provision and drop a tenant by id.

Each function is what a Celery task runs (see :mod:`tenancy.tasks`); a test,
a shell or a management command can call it directly.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenancy import get_tenant_model, provisioning
from tenancy.models import AbstractTenant, TenantState

logger = logging.getLogger("tenancy.lifecycle")


def provision_tenant(pk: Any) -> AbstractTenant | None:
    """Provision the tenant with primary key ``pk`` and mark it ready.

    Returns None if the tenant no longer exists (deleted before its turn).
    """
    model = get_tenant_model()
    tenant = model._default_manager.filter(pk=pk).first()
    if tenant is None:
        return None
    if tenant.state == TenantState.READY:
        return tenant
    _set_state(tenant, TenantState.PROVISIONING)
    try:
        provisioning.provision(tenant.db_schema, tenant.database)
    except Exception as exc:
        _set_state(tenant, TenantState.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _set_state(tenant, TenantState.READY)
    return tenant


def drop_tenant_storage(schema: str, database: str) -> bool:
    """Drop a deleted tenant's schema; see :func:`tenancy.provisioning.drop`."""
    return provisioning.drop(schema, database)


def _set_state(tenant: AbstractTenant, state: str, *, error: str = "") -> None:
    now = timezone.now()
    with transaction.atomic():
        type(tenant)._default_manager.filter(pk=tenant.pk).update(
            state=state, last_error=error, state_changed_at=now
        )
    tenant.state, tenant.last_error, tenant.state_changed_at = state, error, now

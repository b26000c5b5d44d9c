"""Model signal receivers that turn tenant creation and deletion into work.

The work itself starts only after the transaction commits, so it never sees
a tenant that may still roll back, and it receives ids, never instances.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from tenancy import conf


def tenant_saved(sender: type, instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
    """Schedule provisioning of a newly created tenant."""
    if not created or raw:
        return
    using = instance._state.db
    transaction.on_commit(partial(_provision, instance.pk), using=using)


def tenant_deleted(sender: type, instance: Any, **_: Any) -> None:
    """Schedule the drop of a deleted tenant's schema."""
    using = instance._state.db
    transaction.on_commit(partial(_drop, instance.db_schema, instance.database), using=using)


def _provision(pk: Any) -> None:
    from tenancy import lifecycle, tasks

    if conf.eager():
        lifecycle.provision_tenant(pk)
    else:
        tasks.provision_tenant.delay(pk)


def _drop(schema: str, database: str) -> None:
    from tenancy import lifecycle, tasks

    if conf.eager():
        lifecycle.drop_tenant_storage(schema, database)
    else:
        tasks.drop_tenant.delay(schema, database)

"""Model signal receivers that turn tenant creation and deletion into work.

The intent is durable before anything is enqueued: a new tenant is a
``pending`` row, a deleted one leaves a tombstone written in the deleting
transaction. Work is enqueued only after commit, with ids, never instances.
"""

from __future__ import annotations

from typing import Any

from tenancy import lifecycle, tasks


def tenant_saved(sender: type, instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
    """Enqueue provisioning of a newly created tenant."""
    if created and not raw:
        tasks.dispatch_after_commit(
            tasks.provision_tenant,
            instance.pk,
            using=instance._state.db,
            database=instance.database,
        )


def tenant_deleted(sender: type, instance: Any, **_: Any) -> None:
    """Write the tenant's tombstone and enqueue the drop of its schema."""
    using = instance._state.db
    tomb = lifecycle.write_tombstone(instance, using)
    if tomb is not None:
        tasks.dispatch_after_commit(tasks.drop_tenant, tomb.pk, using=using, database=tomb.database)

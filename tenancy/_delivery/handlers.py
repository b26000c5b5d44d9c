"""Model signal receivers that turn tenant creation and deletion into work.

The intent is durable before anything is sent: a new tenant is a ``pending``
row, a deleted one leaves a tombstone written in the deleting transaction.
Work is sent only after commit, with ids, never instances.
"""

from __future__ import annotations

from typing import Any

from tenancy._orchestration import tombstones
from tenancy._primitives import jobs


def tenant_saved(sender: type, instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
    """Send the provisioning of a newly created tenant."""
    if created and not raw:
        jobs.send_after_commit(
            jobs.PROVISION, instance.pk, using=instance._state.db, database=instance.database
        )


def tenant_deleted(sender: type, instance: Any, **_: Any) -> None:
    """Write the tenant's tombstone and send the drop of its storage."""
    using = instance._state.db
    tomb = tombstones.write(instance, using)
    if tomb is not None:
        jobs.send_after_commit(jobs.DROP, tomb.pk, using=using, database=tomb.database)

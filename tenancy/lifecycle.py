"""The tenant lifecycle as plain functions, for scripts, shells and tests.

Each is what one Celery task runs (see :mod:`tenancy.tasks`), callable
directly and safe to run twice or concurrently: ``provision_tenant``,
``migrate_tenant`` and ``drop_tombstone`` return a :class:`Result` and raise
what failed (after keeping it on the tenant or tombstone); ``migrate_tenants``
returns each tenant's ``Result``; ``reconcile`` a :class:`ReconcileReport`;
``retry_failed`` the tenants it retried and the errors of those that failed
again inline. Example::

    from tenancy import lifecycle

    lifecycle.retry(customer)                 # a failed tenant: back to pending, sent again
    report = lifecycle.reconcile(grace=0)     # send what is stuck, now
    print(report)
"""

from __future__ import annotations

from tenancy._orchestration.migrate import migrate_tenant, migrate_tenants
from tenancy._orchestration.provision import provision_tenant, retry
from tenancy._orchestration.reconcile import ReconcileReport, reconcile, retry_failed
from tenancy._orchestration.tombstones import drop as drop_tombstone
from tenancy._primitives.states import Result

__all__ = [
    "ReconcileReport",
    "Result",
    "drop_tombstone",
    "migrate_tenant",
    "migrate_tenants",
    "provision_tenant",
    "reconcile",
    "retry",
    "retry_failed",
]

"""Lifecycle signals that applications hook into.

All are sent with ``sender`` = the tenant model class.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["provisioning_failed", "tenant_dropped", "tenant_provisioned"]

#: The tenant's schema is built and the tenant is ready; sent after commit,
#: robustly (a failing receiver is logged and cannot undo the ready state).
#: Arguments: ``tenant``.
tenant_provisioned = Signal()

#: Provisioning failed for good (retries exhausted). Arguments: ``tenant``, ``error`` (str).
provisioning_failed = Signal()

#: A deleted tenant's schema was dropped. Arguments: ``schema``, ``database``,
#: ``incarnation`` (the dropped life of the tenant; what its cache keys and file
#: paths carry, see ``tenancy.caches`` and ``tenancy.files``).
tenant_dropped = Signal()

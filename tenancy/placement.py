"""Choosing the database of a new tenant: the building blocks of ``TENANCY_PLACEMENT``.

``TENANCY_PLACEMENT`` names a callable ``(tenant, aliases) -> alias``; it may
fall back to the default choice, the alias holding the fewest tenants::

    from tenancy.placement import fewest_tenants

    def by_plan(tenant, aliases):
        if tenant.plan == "enterprise":
            return "dedicated"
        return fewest_tenants(tenant, [a for a in aliases if a != "dedicated"])
"""

from __future__ import annotations

from tenancy._primitives.placement import fewest_tenants

__all__ = ["fewest_tenants"]

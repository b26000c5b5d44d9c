"""Which database a new tenant's schema goes to (``TENANCY_DATABASES``).

The choice is made once, at creation, and stored on the tenant row; the
tenant rows themselves stay on the shared database. The default puts a new
tenant on the alias with the fewest tenants; ``TENANCY_PLACEMENT`` names a
callable for weights, regions or plans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count
from django.utils.module_loading import import_string

from tenancy._primitives import conf
from tenancy.exceptions import PlacementError

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant


def choose(tenant: AbstractTenant) -> str:
    """Return the alias for a new tenant's schema, checked against the settings."""
    aliases = conf.databases()
    path = conf.placement()
    alias = (
        fewest_tenants(tenant, aliases) if path is None else import_string(path)(tenant, aliases)
    )
    check(alias)
    return alias


def check(alias: str) -> None:
    """Refuse an alias that is not configured to hold tenants."""
    if alias not in settings.DATABASES:
        raise PlacementError(
            f"Database alias {alias!r} is not in DATABASES; add it there and to "
            "TENANCY_DATABASES to place tenants on it."
        )
    if alias not in conf.databases():
        raise PlacementError(
            f"Database alias {alias!r} is not in TENANCY_DATABASES {conf.databases()!r}; "
            "add it there to place tenants on it."
        )


def fewest_tenants(tenant: AbstractTenant, aliases: list[str]) -> str:
    """Return the alias holding the fewest tenants (the first listed on a tie)."""
    if len(aliases) == 1:
        return aliases[0]
    counts = dict(
        type(tenant)
        ._default_manager.filter(database__in=aliases)
        .values_list("database")
        .annotate(n=Count("pk"))
        .values_list("database", "n")
    )
    return min(aliases, key=lambda alias: (counts.get(alias, 0), aliases.index(alias)))

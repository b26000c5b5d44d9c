"""Finding the one tenant a command's argument names: by schema or lookup field, or by pk.

``tenancy_move`` and ``createtenantsuperuser`` take a tenant the same way, so an
operator types the same key to both, and an ambiguous key is refused the same
way instead of acting on the wrong tenant.
"""

from __future__ import annotations

from typing import Any

from django.core import exceptions
from django.core.management.base import CommandError
from django.db.models import Q

from tenancy._primitives import shared
from tenancy._primitives.lookup import lookup_field_or_none


def find_tenant(key: str, *, by_pk: bool) -> Any:
    """Return the one tenant ``key`` names; refuse a key that names none, or two.

    Without ``by_pk`` the key is a schema name or the value of the tenant
    model's lookup field; when one tenant's schema is another's lookup value,
    the command refuses rather than guess.
    """
    model = shared.tenant_model()
    tenants = shared.tenants()
    if by_pk:
        try:
            tenant = tenants.filter(pk=key).first()
        except (ValueError, exceptions.ValidationError):  # not a valid pk for this model
            tenant = None
        if tenant is None:
            raise CommandError(f"No tenant has the primary key {key!r}.")
        return tenant
    field = lookup_field_or_none(model) or "db_schema"
    lookup = Q(db_schema=key)
    if any(f.name == field for f in model._meta.concrete_fields):
        lookup |= Q(**{field: key})
    found = list(tenants.filter(lookup)[:3])
    if not found:
        raise CommandError(f"No tenant has the schema or {field} {key!r}.")
    if len(found) > 1:
        names = ", ".join(f"pk {t.pk} (schema {t.db_schema})" for t in found)
        raise CommandError(
            f"{key!r} names more than one tenant ({names}): one's schema is another's "
            f"{field}. Nothing was done; name the tenant by its primary key with --pk."
        )
    return found[0]

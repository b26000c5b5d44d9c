"""``Org``: the tenant, named by its ``name`` (schema ``tenant_<name>``)."""

from django.db import models

from tenancy.models import AbstractTenant


class Org(AbstractTenant):
    name = models.CharField(max_length=50, unique=True)

    def natural_key(self) -> tuple[str]:
        return (self.name,)

    def __str__(self) -> str:
        return self.name

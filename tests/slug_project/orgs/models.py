"""The tenant model keyed by ``slug`` (no ``name`` field), and one template."""

import os

from django.db import models

from tenancy.models import AbstractTenant, TenantModel


class Organization(AbstractTenant):
    slug = models.SlugField(max_length=50, unique=True)
    region = models.CharField(max_length=20, default="eu")

    if os.environ.get("ORGS_LOOKUP"):
        TENANT_LOOKUP_FIELD = os.environ["ORGS_LOOKUP"]

    def natural_key(self):
        if os.environ.get("ORGS_KEY") == "two":
            return (self.region, self.slug)
        return (self.slug,)

    def __str__(self):
        return self.slug


class Note(TenantModel):
    title = models.CharField(max_length=100)

"""Models at stage ``SHOP_STAGE``: 1 initial, 2 adds a field and a model, 3 a constraint."""

import os

from django.db import models

from tenancy.models import AbstractTenant, TenantModel

STAGE = int(os.environ.get("SHOP_STAGE", "1"))


class Store(AbstractTenant):
    name = models.CharField(max_length=50, unique=True)

    def natural_key(self):
        return (self.name,)

    def __str__(self):
        return self.name


class Note(TenantModel):
    title = models.CharField(max_length=100)
    if STAGE >= 2:
        priority = models.IntegerField(default=0)

    if STAGE >= 3:

        class Meta:
            constraints = [models.UniqueConstraint(fields=["title"], name="note_title_unique")]


if STAGE >= 2:

    class Label(TenantModel):
        note = models.ForeignKey(Note, models.CASCADE, null=True, related_name="labels")
        text = models.CharField(max_length=50)

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


if os.environ.get("SHOP_MIXINS") == "1":
    # Any base order Django allows for a concrete model, with a multi-table child.

    class Stamped(models.Model):
        stamp = models.CharField(max_length=20, blank=True)

        class Meta:
            abstract = True

        def stamped(self):
            return f"{self.stamp}!"

    class Shiny:
        """A plain mixin: methods only."""

        def shine_twice(self):
            return 2 * self.shine

    class Badge(TenantModel, Stamped, Shiny):
        title = models.CharField(max_length=50)
        shine = models.IntegerField(default=1)

    class GoldBadge(Badge):
        carats = models.IntegerField(default=0)

    class Sticker(Stamped, TenantModel):
        label = models.CharField(max_length=50)

    class Holo(Shiny, Sticker):
        shine = models.IntegerField(default=0)


if STAGE >= 2:

    class Label(TenantModel):
        note = models.ForeignKey(Note, models.CASCADE, null=True, related_name="labels")
        text = models.CharField(max_length=50)

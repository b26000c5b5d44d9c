"""Models of the test project: the README's example and every relation kind."""

from django.conf import settings
from django.db import models

from tenancy.models import AbstractTenant, TenantModel


class Customer(AbstractTenant):
    name = models.CharField(max_length=50, unique=True)

    def natural_key(self):
        return (self.name,)

    def __str__(self):
        return self.name


class ProjectQuerySet(models.QuerySet):
    def named(self, name):
        return self.filter(name=name)


class Project(TenantModel):
    name = models.CharField(max_length=50)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sponsor = models.ForeignKey(
        "auth.User",
        models.CASCADE,
        null=True,
        blank=True,
        related_name="%(class)s_sponsored",
    )
    watchers = models.ManyToManyField("auth.User", blank=True, related_name="+")

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def shout(self):
        return self.name.upper()


class Report(TenantModel):
    project = models.ForeignKey(Project, models.CASCADE, related_name="reports")
    content = models.TextField(blank=True)


class Tag(TenantModel):
    label = models.SlugField(unique=True)


class Item(TenantModel):
    project = models.ForeignKey("Project", models.CASCADE)
    code = models.CharField(max_length=20)
    position = models.IntegerField(default=0)
    tags = models.ManyToManyField(Tag, blank=True, related_name="items")

    class Meta:
        unique_together = [("project", "code")]
        indexes = [models.Index(fields=["position"], name="item_position_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(position__gte=0), name="item_position_gte_0")
        ]


class Person(TenantModel):
    name = models.CharField(max_length=50)
    best_friend = models.OneToOneField(
        "self", models.SET_NULL, null=True, blank=True, related_name="befriended_by"
    )


class Team(TenantModel):
    name = models.CharField(max_length=50)
    people = models.ManyToManyField(Person, through="Membership", related_name="teams")


class Membership(TenantModel):
    team = models.ForeignKey(Team, models.CASCADE)
    person = models.ForeignKey(Person, models.CASCADE)
    role = models.CharField(max_length=20, default="member")


class Category(TenantModel):
    name = models.CharField(max_length=50)


class Product(TenantModel):
    category = models.ForeignKey(Category, models.CASCADE, related_name="products")
    name = models.CharField(max_length=50)


class SpecialProject(Project):
    """Multi-table inheritance between tenant models."""

    budget = models.IntegerField(default=0)


class ArchivedProject(Project):
    """Proxy inheritance between tenant models."""

    class Meta:
        proxy = True

    def shout(self):
        return f"archived {self.name}"


class Profile(TenantModel):
    """Relations to a shared model with reverse accessors on it (per tenant)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="%(class)s_profile"
    )
    fans = models.ManyToManyField("auth.User", blank=True, related_name="%(class)s_idols")

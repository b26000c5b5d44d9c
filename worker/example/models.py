"""Models of the example project, as in the design brief's public API example."""

from django.db import models

from tenancy.models import AbstractTenant, TenantModel


class Customer(AbstractTenant):
    name = models.CharField(max_length=50, unique=True)

    def natural_key(self):
        return (self.name,)


class Project(TenantModel):
    name = models.CharField(max_length=50)
    owner = models.ForeignKey("auth.User", models.SET_NULL, null=True, related_name="+")


class Report(TenantModel):
    project = models.ForeignKey(Project, models.CASCADE, related_name="reports")
    content = models.TextField(blank=True)

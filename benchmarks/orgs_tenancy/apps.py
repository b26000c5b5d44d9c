"""App config of the tenant model's app."""

from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "benchmarks.orgs_tenancy"
    label = "orgs"
    default_auto_field = "django.db.models.BigAutoField"

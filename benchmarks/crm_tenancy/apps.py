"""App config: the label ``crm`` gives the same table names as the django-tenants build."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "benchmarks.crm_tenancy"
    label = "crm"
    default_auto_field = "django.db.models.BigAutoField"

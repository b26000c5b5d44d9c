"""App config: the label ``crm`` gives the same table names as the django-tenancy build."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "benchmarks.crm_tenants"
    label = "crm"
    default_auto_field = "django.db.models.BigAutoField"

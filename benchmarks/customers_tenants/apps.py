"""App config of django-tenants' tenant and domain models."""

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "benchmarks.customers_tenants"
    label = "customers"
    default_auto_field = "django.db.models.BigAutoField"

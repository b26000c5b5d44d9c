"""The physical limit: plain Django, only to render the workload's DDL (never to run it)."""

from benchmarks.settings.common import *  # noqa: F403
from benchmarks.settings.common import CRM_MIGRATIONS, DATABASE

DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", **DATABASE}}
INSTALLED_APPS = ["benchmarks.crm_tenants"]
MIGRATION_MODULES = {"crm": CRM_MIGRATIONS or "benchmarks.crm_tenants.migrations"}

"""django-tenants: ``Client``/``Domain`` in a shared app, the crm app in TENANT_APPS."""

import os

from benchmarks.settings.common import *  # noqa: F403
from benchmarks.settings.common import CRM_MIGRATIONS, DATABASE

DATABASES = {"default": {"ENGINE": "django_tenants.postgresql_backend", **DATABASE}}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

SHARED_APPS = [
    "django_tenants",
    "benchmarks.customers_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
]
TENANT_APPS = ["benchmarks.crm_tenants"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
MIGRATION_MODULES = {"crm": CRM_MIGRATIONS or "benchmarks.crm_tenants.migrations"}

TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
#: The multiprocessing executor's pool: one process per core of the benchmark machine.
TENANT_MULTIPROCESSING_MAX_PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))
MIDDLEWARE = ["django_tenants.middleware.main.TenantMainMiddleware"]
ROOT_URLCONF = "benchmarks.settings.urls"

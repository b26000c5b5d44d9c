"""django-tenancy: ``Org`` tenants, the crm templates, the lifecycle on Celery (Redis)."""

import os

from benchmarks.settings.common import *  # noqa: F403
from benchmarks.settings.common import CRM_MIGRATIONS, DATABASE

DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", **DATABASE}}
#: The scale-out benchmark places tenants on a second database as well.
if os.environ.get("BENCH_PG_NAME_2"):
    DATABASES["tenants2"] = {
        "ENGINE": "django.db.backends.postgresql",
        **DATABASE,
        "NAME": os.environ["BENCH_PG_NAME_2"],
    }
TENANCY_DATABASES = os.environ.get("BENCH_TENANCY_DATABASES", "default").split(",")
#: Persistent connections (seconds) for a run that measures their effect; Django's default is 0.
for _database in DATABASES.values():
    _database["CONN_MAX_AGE"] = int(os.environ.get("BENCH_CONN_MAX_AGE", "0"))
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tenancy",
    "benchmarks.orgs_tenancy",
    "benchmarks.crm_tenancy",
]
MIGRATION_MODULES = {"crm": CRM_MIGRATIONS or "benchmarks.crm_tenancy.migrations"}

TENANCY_TENANT_MODEL = "orgs.Org"
TENANCY_CELERY_QUEUE = os.environ.get("BENCH_QUEUE") or None
TENANCY_MODEL_CACHE_SIZE = int(os.environ.get("BENCH_CACHE_SIZE", "1000"))
#: The warm pool is measured separately: 0 (off) unless the harness sets it.
TENANCY_POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "0"))
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

"""A small project whose tenant models change between stages (``SHOP_STAGE``).

The migration tests run Django's own commands on it in subprocesses, as a
user would: makemigrations, migrate, createtenant, tenancy_migrate.
"""

import os

if os.environ.get("SHOP_DATABASE", "postgresql") == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["SHOP_SQLITE_PATH"],
            "OPTIONS": {"timeout": 30},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["SHOP_PG_NAME"],
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "tenancy",
    "tests.migrations_project.shop",
]
MIGRATION_MODULES = {"shop": os.environ["SHOP_MIGRATIONS_MODULE"]}
TENANCY_TENANT_MODEL = "shop.Store"
TENANCY_EAGER = os.environ.get("TENANCY_EAGER") == "1"
TENANCY_CELERY_QUEUE = os.environ.get("TENANCY_CELERY_QUEUE") or None
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")

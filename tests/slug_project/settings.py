"""A project whose tenant model has no ``name``: ``Organization(slug=...)``.

``tests/test_any_tenant_model.py`` runs it in subprocesses, in eager mode, on
SQLite (or on PostgreSQL, the database ``ORGS_PG_NAME``), in the variants its
environment selects: ``ORGS_KEY=two`` gives the model a natural key of two
fields, ``ORGS_LOOKUP`` declares its lookup field, ``ORGS_TEST_TENANT`` sets
``TENANCY_TEST_TENANT`` (JSON) and ``ORGS_WITHOUT_TENANCY=1`` leaves
``tenancy`` out of ``INSTALLED_APPS``.
"""

import json
import os

if os.environ.get("ORGS_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["ORGS_PG_NAME"],
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["ORGS_SQLITE_PATH"],
        }
    }
SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "tenancy",
    "tests.slug_project.orgs",
]
if os.environ.get("ORGS_WITHOUT_TENANCY") == "1":
    INSTALLED_APPS.remove("tenancy")
MIDDLEWARE = ["tenancy.middleware.TenantMiddleware"]
ROOT_URLCONF = "tests.slug_project.urls"
ALLOWED_HOSTS = ["*"]
TENANCY_TENANT_MODEL = "orgs.Organization"
TENANCY_BASE_DOMAIN = "example.com"
TENANCY_EAGER = True
if os.environ.get("ORGS_TEST_TENANT"):
    TENANCY_TEST_TENANT = json.loads(os.environ["ORGS_TEST_TENANT"])

"""Settings of the test suite.

``TENANCY_TEST_DATABASE=sqlite`` runs the suite on SQLite (table prefixes);
the default is the real PostgreSQL on 127.0.0.1:5432 (one schema per tenant).
"""

import os

BACKEND = os.environ.get("TENANCY_TEST_DATABASE", "postgresql")

if BACKEND == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TENANCY_SQLITE_PATH", "/tmp/tenancy-tests.sqlite3"),
            "TEST": {
                "NAME": os.environ.get("TENANCY_SQLITE_TEST_PATH", "/tmp/tenancy-test.sqlite3")
            },
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "tenancy"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": os.environ.get("TENANCY_PG_TEST_NAME", "test_tenancy")},
        }
    }

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "tenancy",
    "tests.testapp",
    "tests.authapp",
]
TENANCY_TENANT_MODEL = "testapp.Customer"
# Tenant-scoped users (tenancy.auth, tests/test_auth.py).
TENANCY_USER_MODEL = "authapp.Member"
TENANCY_EAGER = True
# The suite's broker is its own, whatever the shell or an .env file exports: the
# broker fixture's private redis-server (tests/conftest.py), or Celery's in-process
# memory broker for tests that publish without a worker. Celery reads
# CELERY_BROKER_URL, CELERY_RESULT_BACKEND, CELERY_BROKER_READ_URL/WRITE_URL,
# CELERY_CONFIG_MODULE and CELERY_LOADER from the environment, ahead of these
# settings, so every CELERY_* variable goes, in this process and so in every
# process it starts. Worker processes the tests start get their broker as
# TENANCY_TEST_BROKER_URL (tests/workers.py).
for _name in [name for name in os.environ if name.startswith("CELERY_")]:
    del os.environ[_name]
CELERY_BROKER_URL = os.environ.get("TENANCY_TEST_BROKER_URL") or "memory://"

# Worker processes started by the tests read these from their environment.
TENANCY_CELERY_QUEUE = os.environ.get("TENANCY_CELERY_QUEUE") or None
TENANCY_MAX_RETRIES = int(os.environ.get("TENANCY_MAX_RETRIES", "5"))
TENANCY_RETRY_BACKOFF = float(os.environ.get("TENANCY_RETRY_BACKOFF", "2"))
TENANCY_LOCK_WAIT = float(os.environ.get("TENANCY_LOCK_WAIT", "10"))
TENANCY_TASK_READY_TIMEOUT = float(os.environ.get("TENANCY_TASK_READY_TIMEOUT", "300"))
if os.environ.get("TENANCY_DATABASES"):
    TENANCY_DATABASES = os.environ["TENANCY_DATABASES"].split(",")

if BACKEND != "sqlite":
    # A second database that may hold tenants (tests of placement and moves).
    DATABASES["other"] = {
        **DATABASES["default"],
        # Worker processes the tests start are told the test database's name.
        "NAME": os.environ.get("PGDATABASE_OTHER", DATABASES["default"]["NAME"]),
        "TEST": {"NAME": os.environ.get("TENANCY_PG_OTHER_TEST_NAME", "test_tenancy_other")},
    }
    # A database server that never answers: for tests of transient failures.
    DATABASES["unreachable"] = {
        **DATABASES["default"],
        "PORT": "1",
        "TEST": {"NAME": "test_unreachable", "MIRROR": "default"},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"tenancy": {"handlers": ["console"], "level": "INFO"}},
}

# The admin (tests/test_admin.py, tests/test_admin_browser.py): tests/urls.py
# registers the tenant model with tenancy.admin.TenantAdmin.
INSTALLED_APPS += [
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"

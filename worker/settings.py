"""Settings of the example SaaS project.

Runs with no services by default: SQLite for the database and Celery's
filesystem broker. Environment variables switch to real services:

- ``DATABASE_URL``: ``postgres://user:password@host:port/name`` (also
  ``postgresql://``; query parameters such as ``?sslmode=require`` become
  ``OPTIONS``) or ``sqlite:////absolute/path.sqlite3``. Default: SQLite at
  ``WORKER_SQLITE_PATH`` (``<tempdir>/tenancy-example.sqlite3``).
- ``CELERY_BROKER_URL``: e.g. ``redis://localhost:6379/0``. Default:
  ``filesystem://`` under ``WORKER_BROKER_DIR`` (``<tempdir>/tenancy-example-broker``).
- ``TENANCY_EAGER=1``: run the tenant lifecycle inline, without a worker.
- ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS`` (comma-separated).
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TMP_DIR = Path(tempfile.gettempdir())
TRUE = {"1", "true", "yes", "on"}


def database_from_url(url: str) -> dict[str, object]:
    """Return a ``DATABASES`` entry for a ``postgres://`` or ``sqlite://`` URL."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        config: dict[str, object] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
        if parts.query:
            config["OPTIONS"] = dict(parse_qsl(parts.query))
        return config
    if parts.scheme == "sqlite":
        # sqlite:////abs/path -> /abs/path; sqlite:///rel/path -> rel/path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:] or ":memory:"}
    raise ImproperlyConfigured(
        f"DATABASE_URL must start with postgres://, postgresql:// or sqlite://, not {url!r}."
    )


BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in TRUE
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "tenancy",
    "worker.example",
]
ROOT_URLCONF = "worker.urls"

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("WORKER_SQLITE_PATH", str(TMP_DIR / "tenancy-example.sqlite3")),
            # A worker (thread or process) writes to the same file: wait for its
            # lock (seconds) instead of failing with "database is locked", and take
            # the write lock when a transaction begins: a transaction that read first
            # cannot wait for it ("database is locked" at once, while the worker
            # provisions a tenant and a signup checks its name).
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

TENANCY_TENANT_MODEL = "example.Customer"
TENANCY_EAGER = os.environ.get("TENANCY_EAGER", "").lower() in TRUE

# Celery (read by worker/celery.py with namespace="CELERY"). No result backend:
# tenants report their state on their own row.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder serves as both ends of the queue, so producer and worker
    # processes on this machine share it.
    _broker_dir = Path(os.environ.get("WORKER_BROKER_DIR", TMP_DIR / "tenancy-example-broker"))
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,  # seconds; the default of 1 s makes the demo sluggish
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"tenancy": {"handlers": ["console"], "level": "INFO"}},
}

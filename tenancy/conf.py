"""Settings of the library, each read at call time so ``override_settings`` works.

Every ``TENANCY_*`` setting has one getter here with its documented default;
nothing else in the package reads ``django.conf.settings`` for them.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Default prefix of a tenant's schema (PostgreSQL) or table prefix (other backends).
DEFAULT_SCHEMA_PREFIX = "tenant_"
#: Default number of tenants whose model classes a process keeps (LRU).
DEFAULT_MODEL_CACHE_SIZE = 1000


def tenant_model_label() -> str:
    """Return ``TENANCY_TENANT_MODEL`` ("app_label.ModelName"); required."""
    label = getattr(settings, "TENANCY_TENANT_MODEL", None)
    if not label:
        raise ImproperlyConfigured(
            "TENANCY_TENANT_MODEL is not set: add TENANCY_TENANT_MODEL = "
            "'yourapp.YourTenant' to settings, naming a subclass of "
            "tenancy.models.AbstractTenant."
        )
    if not isinstance(label, str) or label.count(".") != 1:
        raise ImproperlyConfigured(
            f"TENANCY_TENANT_MODEL must have the form 'app_label.ModelName', not {label!r}."
        )
    return label


def schema_prefix() -> str:
    """Return ``TENANCY_SCHEMA_PREFIX`` (default ``"tenant_"``)."""
    return str(getattr(settings, "TENANCY_SCHEMA_PREFIX", DEFAULT_SCHEMA_PREFIX))


def model_cache_size() -> int:
    """Return ``TENANCY_MODEL_CACHE_SIZE``: tenants whose classes stay cached (default 1000)."""
    size = getattr(settings, "TENANCY_MODEL_CACHE_SIZE", DEFAULT_MODEL_CACHE_SIZE)
    if not isinstance(size, int) or size < 1:
        raise ImproperlyConfigured(
            f"TENANCY_MODEL_CACHE_SIZE must be a positive integer, not {size!r}."
        )
    return size


def eager() -> bool:
    """Return ``TENANCY_EAGER``: run the lifecycle inline instead of on a worker (default False)."""
    return bool(getattr(settings, "TENANCY_EAGER", False))


def default_database() -> str:
    """Return the alias that holds the schema of a new tenant (``TENANCY_DATABASES[0]``)."""
    aliases = getattr(settings, "TENANCY_DATABASES", None) or ["default"]
    return str(aliases[0])


def celery_queue() -> str | None:
    """Return ``TENANCY_CELERY_QUEUE``: the queue of lifecycle tasks (default: Celery's default)."""
    return getattr(settings, "TENANCY_CELERY_QUEUE", None) or None


def max_retries() -> int:
    """Return ``TENANCY_MAX_RETRIES``: retries of a transient failure before ``failed`` (5)."""
    return int(getattr(settings, "TENANCY_MAX_RETRIES", 5))


def retry_backoff() -> float:
    """Return ``TENANCY_RETRY_BACKOFF``: seconds before the first retry, doubled each time (2)."""
    return float(getattr(settings, "TENANCY_RETRY_BACKOFF", 2.0))


def retry_backoff_max() -> float:
    """Return ``TENANCY_RETRY_BACKOFF_MAX``: the longest wait between two retries, seconds (300)."""
    return float(getattr(settings, "TENANCY_RETRY_BACKOFF_MAX", 300.0))


def reconcile_grace() -> float:
    """Return ``TENANCY_RECONCILE_GRACE``: seconds a tenant may stay pending before the
    reconciler re-enqueues it (60), so a task still in the queue is not doubled needlessly."""
    return float(getattr(settings, "TENANCY_RECONCILE_GRACE", 60.0))


def lock_wait() -> float:
    """Return ``TENANCY_LOCK_WAIT``: seconds a task waits for another holder of the
    tenant's lock before leaving the tenant to it (10)."""
    return float(getattr(settings, "TENANCY_LOCK_WAIT", 10.0))


def pool_size() -> int:
    """Return ``TENANCY_POOL_SIZE``: schemas kept built ahead of signups per database
    (PostgreSQL only; default 0, no pool)."""
    return int(getattr(settings, "TENANCY_POOL_SIZE", 0))

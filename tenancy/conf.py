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

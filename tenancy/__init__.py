"""django-tenancy: schema-per-tenant multi-tenancy whose tenant lifecycle runs on Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

__all__ = ["clear_cache", "get_tenant_model"]
__version__ = "0.1.0"


def get_tenant_model() -> type[AbstractTenant]:
    """Return the tenant model named by ``TENANCY_TENANT_MODEL``.

    Raises ``ImproperlyConfigured`` when the setting is missing or malformed,
    names a model that is not installed, or one that is not an
    ``AbstractTenant`` subclass with a ``natural_key()``.
    """
    from tenancy.validation import tenant_model

    return tenant_model()


def clear_cache() -> None:
    """Forget every tenant's model classes cached in this process."""
    from tenancy import cache

    cache.clear_cache()

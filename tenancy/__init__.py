"""django-tenancy: schema-per-tenant multi-tenancy whose tenant lifecycle runs on Celery.

The public API is listed in ``docs/api.md``: this package's ``get_tenant_model``
and ``clear_cache``, and the modules ``tenancy.models``, ``tenancy.exceptions``,
``tenancy.signals``, ``tenancy.tasks``, ``tenancy.lifecycle``,
``tenancy.middleware``, ``tenancy.views``, ``tenancy.forms``, ``tenancy.admin``,
``tenancy.tenant_admin``, ``tenancy.testing``, ``tenancy.state``, ``tenancy.caches``,
``tenancy.files`` and ``tenancy.drf`` (with the ``[drf]`` extra). Modules whose names
start with an underscore are private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    # Imported on first use, as the class machinery below: Django imports this
    # package before its app registry is ready, and migration files import
    # tenancy.state, which must stay free of the rest.
    from tenancy._primitives.shared import tenant_model

    model: Any = tenant_model()
    return model


def clear_cache() -> None:
    """Forget every tenant's model classes cached in this process."""
    from tenancy._classes import cache

    cache.clear_cache()

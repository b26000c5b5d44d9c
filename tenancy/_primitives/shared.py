"""The tenant model and the shared database: defined once, read at call time.

The shared database holds the tenant rows, the tombstones and every other
bookkeeping table of the library; it is wherever Django's routers write the
tenant model. Every layer asks this module, so there is one definition of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import router

from tenancy._primitives import conf
from tenancy._primitives.markers import is_abstract_tenant_subclass

if TYPE_CHECKING:

    class _NaturallyKeyed(Protocol):
        """What this module needs of an ``AbstractTenant`` subclass (not imported: a cycle)."""

        def natural_key(self) -> tuple[Any, ...]: ...


def tenant_model() -> Any:
    """Return the model named by ``TENANCY_TENANT_MODEL``.

    Raises ``ImproperlyConfigured`` when the setting is missing or malformed,
    names a model that is not installed, or one that is not an
    ``AbstractTenant`` subclass with a ``natural_key()``.
    """
    label = conf.tenant_model_label()
    try:
        model = apps.get_model(label, require_ready=False)
    except LookupError:
        raise ImproperlyConfigured(
            f"TENANCY_TENANT_MODEL refers to {label!r}, which is not an installed model: "
            "check the spelling and that its app is in INSTALLED_APPS."
        ) from None
    return check_tenant_model(model, label)


def check_tenant_model(model: type, label: str) -> Any:
    """Return ``model`` if it can be the tenant model, else raise ``ImproperlyConfigured``."""
    if not is_abstract_tenant_subclass(model):
        raise ImproperlyConfigured(
            f"TENANCY_TENANT_MODEL refers to {label!r}, which is not a subclass of "
            "tenancy.models.AbstractTenant: derive the tenant model from it."
        )
    if getattr(cast("type[_NaturallyKeyed]", model).natural_key, "_tenancy_undefined", False):
        raise ImproperlyConfigured(
            f"{label} does not define natural_key(): add one returning the tuple that "
            "names each tenant, e.g. `def natural_key(self): return (self.name,)`."
        )
    return model


def database() -> str:
    """Return the alias that holds the tenant rows and the library's bookkeeping."""
    return str(router.db_for_write(tenant_model()))


def tenants(alias: str | None = None) -> Any:
    """Return the tenant model's default manager on the shared database (or ``alias``)."""
    return tenant_model()._default_manager.using(alias or database())

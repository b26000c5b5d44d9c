"""What kind of model a class is: a template, a tenant's class, a tenant model.

The attributes are set by the layers above (the template metaclass, the class
factory, ``AbstractTenant``); the checks live here, at the bottom, so that
primitives such as the schema editor can tell a tenant table from a shared one
without importing those layers.
"""

from __future__ import annotations

from typing import Any

from tenancy.state import PerTenant

__all__ = [
    "TEMPLATE_ATTR",
    "TENANT_ATTR",
    "PerTenant",
    "is_template",
    "is_tenant_class",
    "is_tenant_model",
    "template_of",
]

#: Class attribute of every per-tenant class: its schema (None for reference builds).
TENANT_ATTR = "_tenancy_schema"
#: Class attribute set (True) on every template by the template metaclass.
TEMPLATE_ATTR = "_tenancy_is_template"
#: Class attribute of a tenant class: the template it was built from.
TEMPLATE_OF_ATTR = "_tenancy_template_class"
#: Class attribute of ``AbstractTenant``: marks the tenant model's hierarchy.
TENANT_MODEL_ATTR = "_tenancy_tenant_model"


def is_template(cls: Any) -> bool:
    """Return whether ``cls`` is a tenant model template (not a tenant's class)."""
    return isinstance(cls, type) and bool(cls.__dict__.get(TEMPLATE_ATTR, False))


def is_tenant_class(cls: Any) -> bool:
    """Return whether ``cls`` is a per-tenant class built from a template."""
    return isinstance(cls, type) and TENANT_ATTR in cls.__dict__


def template_of(cls: type) -> type:
    """Return the template of a tenant class, or the template itself."""
    template: type = cls.__dict__.get(TEMPLATE_OF_ATTR, cls)
    return template


def is_tenant_model(model: Any) -> bool:
    """Return whether a (historical, template or tenant) model has one table per tenant."""
    return isinstance(model, type) and (
        issubclass(model, PerTenant) or is_template(model) or is_tenant_class(model)
    )


def is_abstract_tenant_subclass(model: Any) -> bool:
    """Return whether ``model`` derives from ``tenancy.models.AbstractTenant``."""
    return isinstance(model, type) and getattr(model, TENANT_MODEL_ATTR, False) is True

"""Tenant model templates: the classes users declare as ``TenantModel`` subclasses.

A template is a Django *abstract* model: it has no table and never enters the
global app registry, so nothing global (reverse relations on shared models,
the deletion collector, ``dumpdata``) ever sees a table that does not exist.
The metaclass records every template in :data:`TEMPLATES`, gives it the
``DoesNotExist``/``MultipleObjectsReturned`` that abstract models lack (so
``except Project.DoesNotExist`` catches a tenant class's errors) and guards
its managers with a clear error. Template inheritance keeps Django's meaning:
a template subclassing another template is multi-table inheritance, or a
proxy with ``Meta.proxy = True``.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import MultipleObjectsReturned, ObjectDoesNotExist
from django.db import models
from django.db.models.base import (  # type: ignore[attr-defined]  # private API
    ModelBase,
    subclass_exception,
)
from django.db.models.manager import ManagerDescriptor

from tenancy._primitives.markers import (
    TEMPLATE_ATTR,
    TEMPLATE_OF_ATTR,
    TENANT_ATTR,
    is_template,
    is_tenant_class,
    template_of,
)
from tenancy.exceptions import TemplateModelUsed, TenantModelDefinitionError

__all__ = [
    "TEMPLATES",
    "TENANT_ATTR",
    "TenantModelBase",
    "is_template",
    "is_tenant_class",
    "template_of",
    "template_parent",
]

#: Every template by lower-case label ("app_label.modelname").
TEMPLATES: dict[str, type[models.Model]] = {}


def template_parent(cls: type) -> type | None:
    """Return the template that ``cls`` inherits from (multi-table or proxy), if any."""
    return cls.__dict__.get("_tenancy_parent")


class TemplateManagerDescriptor(ManagerDescriptor):
    """Serve a manager on tenant classes; refuse it, clearly, on the template."""

    def __get__(self, instance: Any, cls: type | None = None) -> Any:
        if cls is not None and instance is None and not is_tenant_class(cls):
            raise TemplateModelUsed(cls, self.manager.name)
        return super().__get__(instance, cls)


class _DefaultManagerGuard:
    """``Template.objects`` where the template declares no ``objects`` manager."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, cls: type | None = None) -> Any:
        if cls is not None and is_template(cls):
            raise TemplateModelUsed(cls, self.name)
        raise AttributeError(self.name)


class TenantModelBase(ModelBase):
    """Metaclass of ``TenantModel``: turns each concrete-looking subclass into a template."""

    # Set by __new__ on every template.
    _tenancy_parent: type | None
    _tenancy_proxy: bool
    _tenancy_own_fields: frozenset[str]
    #: The name of the accessor on the tenant model (``TenantMeta.related_name``); None
    #: or a name ending with "+" for none.
    _tenancy_related_name: str | None

    def __new__(
        mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any], **kwargs: Any
    ) -> TenantModelBase:
        tenant_bases = [b for b in bases if is_tenant_class(b)]
        if tenant_bases and TENANT_ATTR not in attrs:
            # A subclass of a tenant's class made at run time: it stays in that
            # tenant's registry, and is never a new template.
            _as_subclass_of_tenant_class(attrs, tenant_bases[0])
        if TENANT_ATTR in attrs or not any(isinstance(b, TenantModelBase) for b in bases):
            # A tenant's class built by the factory, or TenantModel itself.
            return super().__new__(mcs, name, bases, attrs, **kwargs)
        meta = attrs.pop("Meta", None)
        if getattr(meta, "abstract", False):
            # An abstract mixin of tenant models: plain Django abstract inheritance.
            attrs["Meta"] = meta
            return super().__new__(mcs, name, bases, attrs, **kwargs)
        tenant_meta = attrs.pop("TenantMeta", None)
        parents = [b for b in bases if is_template(b)]
        if len(parents) > 1:
            raise TenantModelDefinitionError(
                f"Tenant model {name} inherits from several templates "
                f"({', '.join(p.__name__ for p in parents)}); inherit from one."
            )
        proxy = bool(getattr(meta, "proxy", False))
        if proxy and not parents:
            raise TenantModelDefinitionError(
                f"Proxy tenant model {name} must inherit from a tenant model template."
            )
        attrs["Meta"] = _template_meta(meta, bases, parents, attrs["__module__"])
        cls = super().__new__(mcs, name, bases, attrs, **kwargs)
        model = cast("type[models.Model]", cls)  # this metaclass only builds models
        parent = parents[0] if parents else None
        own = _own_field_names(model, parent)
        if proxy and own:
            raise TenantModelDefinitionError(
                f"Proxy tenant model {name} declares fields ({', '.join(sorted(own))}); "
                "a proxy shares its parent's table and cannot add fields."
            )
        setattr(cls, TEMPLATE_ATTR, True)
        cls._tenancy_parent = parent
        cls._tenancy_proxy = proxy
        cls._tenancy_own_fields = own
        cls._tenancy_related_name = getattr(tenant_meta, "related_name", f"{name.lower()}s")
        if proxy:
            _strip_inherited_fields(model, own)
        _add_exceptions(model, parent)
        _guard_managers(model)
        TEMPLATES[model._meta.label_lower] = model
        return cls

    def __repr__(cls) -> str:
        schema = cls.__dict__.get(TENANT_ATTR)
        if schema:
            return f"<class '{schema}.{cls.__name__}'>"  # the tenant's, not the template's
        return super().__repr__()


def _as_subclass_of_tenant_class(attrs: dict[str, Any], base: type) -> None:
    """Make a run-time subclass of a tenant's class a class of the same tenant."""
    attrs.setdefault("__module__", base.__module__)
    attrs[TENANT_ATTR] = base.__dict__[TENANT_ATTR]
    attrs.setdefault("_tenancy_database", base.__dict__.get("_tenancy_database"))
    attrs[TEMPLATE_OF_ATTR] = template_of(base)
    meta = attrs.get("Meta")
    if meta is None or not hasattr(meta, "apps"):
        opts = base._meta  # type: ignore[attr-defined]  # a tenant class is a model
        body = {"apps": opts.apps, "app_label": opts.app_label}
        attrs["Meta"] = type("Meta", (meta,) if meta is not None else (), body)


def _template_meta(
    meta: type | None, bases: tuple[type, ...], parents: list[type], module: str
) -> type:
    """Return the Meta of a template: the declared one, made abstract."""
    if meta is None and not parents:
        # Django's abstract inheritance: an undeclared Meta comes from the mixin.
        meta = next((b.Meta for b in bases if hasattr(b, "Meta") and hasattr(b, "_meta")), None)
    body: dict[str, Any] = {"abstract": True, "__module__": module}
    if meta is not None and hasattr(meta, "proxy"):
        body["proxy"] = False
    return type("Meta", (meta,) if meta is not None else (), body)


def _own_field_names(cls: type[models.Model], parent: type[models.Model] | None) -> frozenset[str]:
    names = {f.name for f in (*cls._meta.local_fields, *cls._meta.local_many_to_many)}
    if parent is not None:
        names -= {f.name for f in (*parent._meta.local_fields, *parent._meta.local_many_to_many)}
    return frozenset(names)


def _strip_inherited_fields(cls: type[models.Model], own: frozenset[str]) -> None:
    """Drop the parent's fields that Django copied into a proxy template.

    Django copies an abstract parent's fields into its children; a proxy's
    tenant class must get them from its concrete parent instead.
    """
    opts = cls._meta
    for field in [*opts.local_fields, *opts.local_many_to_many]:
        if field.name in own:
            continue
        for attr in {field.name, field.attname, f"get_{field.name}_display"}:
            if attr in cls.__dict__:
                delattr(cls, attr)
    opts.local_fields = [f for f in opts.local_fields if f.name in own]
    opts.local_many_to_many = [f for f in opts.local_many_to_many if f.name in own]
    opts._expire_cache()  # type: ignore[attr-defined]  # private API


def _add_exceptions(cls: type[models.Model], parent: type[models.Model] | None) -> None:
    """Give the template the exceptions that Django only gives concrete models."""
    module = cls.__module__
    for name, root in (
        ("DoesNotExist", ObjectDoesNotExist),
        ("MultipleObjectsReturned", MultipleObjectsReturned),
    ):
        base = getattr(parent, name) if parent is not None else root
        setattr(cls, name, subclass_exception(name, (base,), module, attached_to=cls))


def _guard_managers(cls: type[models.Model]) -> None:
    for manager in cls._meta.local_managers:
        setattr(cls, manager.name, TemplateManagerDescriptor(manager))


def default_manager_guard() -> Any:
    """Return the guard that ``TenantModel`` installs as ``objects``."""
    return _DefaultManagerGuard()

"""The per-process cache of tenant classes: bounded, least recently used first out.

``Template.for_tenant(tenant)`` on a cached tenant is a dictionary look-up and
three comparisons with the instance: its incarnation, its database and its
state. Any mismatch takes the slow path, which reads the tenant's row once:

- a tenant that is not ready is refused with ``TenantNotReady``;
- an instance whose row is gone (deleted, in this process or another) or is
  another incarnation is refused with ``TenantDeleted``: a tenant signed up
  again under the same key is a new tenant, with another schema, and an old
  instance never reaches it;
- otherwise the tenant's classes are built (all at once, see
  :mod:`tenancy._classes.factory`) and cached.

From async code the slow path cannot read the row (Django refuses synchronous
queries there), so a miss reads nothing: an instance that says it is not ready
is refused with ``TenantNotReady``, any other miss with ``TenantNotCached``,
whose message names ``await Template.afor_tenant(tenant)``: that reads the row
through ``sync_to_async`` and fills the same cache.

Evicted tenants' classes are detached from everything global and become
garbage.
"""

from __future__ import annotations

import asyncio
import copyreg
import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async
from django.db import models

from tenancy._classes import factory, prototypes
from tenancy._classes.registry import (
    TENANT_ATTR,
    TenantModelBase,
    is_template,
    is_tenant_class,
    template_of,
)
from tenancy._primitives import conf, shared
from tenancy._primitives.states import READY
from tenancy.exceptions import TenancyError, TenantDeleted, TenantNotCached, TenantNotReady

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

_bundles: OrderedDict[str, factory.TenantModels] = OrderedDict()
_lock = threading.RLock()
#: The plain string, compared on the warm path (cheaper than the enum member).
_READY = str(READY.value)


def model_for(template: type[models.Model], tenant: AbstractTenant) -> type[models.Model]:
    """Return the tenant's class of ``template``; the body of ``Template.for_tenant()``."""
    try:
        bundle = _bundles.get(tenant.db_schema)  # type: ignore[arg-type]
        if (
            bundle is None
            or bundle.incarnation != tenant.incarnation
            or bundle.database != tenant.database
            or tenant.state != _READY
        ):
            bundle = _load(template, tenant)
        else:
            _bundles.move_to_end(bundle.schema)  # type: ignore[arg-type]
    except AttributeError:
        raise TypeError(
            f"for_tenant() takes a tenant (an AbstractTenant instance), not {tenant!r}."
        ) from None
    try:
        return bundle.models[template]
    except KeyError:
        return bundle.models[_template(template)]


async def amodel_for(template: type[models.Model], tenant: AbstractTenant) -> type[models.Model]:
    """Return the tenant's class of ``template``; the body of ``Template.afor_tenant()``.

    A hit is :func:`model_for`'s; a miss reads the row in Django's thread for
    synchronous code (``sync_to_async``), as ``for_tenant()`` would, and fills the cache.
    """
    try:
        bundle = _bundles.get(tenant.db_schema)  # type: ignore[arg-type]
        hit = (
            bundle is not None
            and bundle.incarnation == tenant.incarnation
            and bundle.database == tenant.database
            and tenant.state == _READY
        )
    except AttributeError:
        raise TypeError(
            f"afor_tenant() takes a tenant (an AbstractTenant instance), not {tenant!r}."
        ) from None
    if hit:
        return model_for(template, tenant)
    bundle = await sync_to_async(tenant_models)(tenant)
    try:
        return bundle.models[template]
    except KeyError:
        return bundle.models[_template(template)]


def _load(template: type[models.Model], tenant: AbstractTenant) -> factory.TenantModels:
    """Load the tenant's classes on a miss; from async code, refuse without a query."""
    if not _in_async_code():
        return tenant_models(tenant)
    if tenant.pk is None:
        raise TenantDeleted(tenant)
    if tenant.state != _READY or not tenant.db_schema:
        raise TenantNotReady(tenant, tenant.state, tenant.last_error)
    raise TenantNotCached(tenant, template)


def _in_async_code() -> bool:
    """Whether Django would refuse a query here (``async_unsafe``): an event loop runs
    in this thread and ``DJANGO_ALLOW_ASYNC_UNSAFE`` is not set."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")


def tenant_models(tenant: AbstractTenant, *, verify: bool = True) -> factory.TenantModels:
    """Return all of a tenant's classes, building and caching them on a miss.

    With ``verify`` (the default), the tenant's row is read first and the
    instance refreshed from it: raises :class:`TenantDeleted` when the row is
    gone or is another incarnation, :class:`TenantNotReady` unless it is
    ready. Without it (provisioning itself, which needs the classes of a
    tenant it is building), the instance is trusted.
    """
    if verify:
        _verify(tenant)
    key = tenant.db_schema
    if not key:
        raise TenantNotReady(tenant, tenant.state, "it has no schema yet")
    with _lock:
        bundle = _bundles.get(key)
        if bundle is not None and (
            bundle.incarnation != tenant.incarnation or bundle.database != tenant.database
        ):
            del _bundles[key]
            bundle.release()
            bundle = None
        if bundle is None:
            bundle = prototypes.build(key, tenant.database, incarnation=tenant.incarnation)
            _make_picklable(bundle)
            _bundles[key] = bundle
            _evict(conf.model_cache_size())
    return bundle


def cached(schema: str) -> factory.TenantModels | None:
    """Return the cached classes of the tenant stored under ``schema``, if any."""
    return _bundles.get(schema)


def evict(schema: str) -> None:
    """Forget one tenant's classes (after it is deleted, dropped or moved)."""
    with _lock:
        bundle = _bundles.pop(schema, None)
    if bundle is not None:
        bundle.release()


def clear_cache() -> None:
    """Forget every tenant's classes in this process."""
    with _lock:
        bundles = list(_bundles.values())
        _bundles.clear()
    for bundle in bundles:
        bundle.release()


def cached_schemas() -> list[str]:
    """Return the schemas whose classes are cached, least recently used first."""
    return list(_bundles)


def _evict(size: int) -> None:
    while len(_bundles) > size:
        _, bundle = _bundles.popitem(last=False)
        bundle.release()


#: The fields of the row that decide whether an instance may be served.
_VERIFIED_FIELDS = ("state", "last_error", "database", "db_schema", "incarnation")


def _verify(tenant: AbstractTenant) -> None:
    """Refresh the instance's lifecycle fields from its row; refuse a stale or unready one."""
    if tenant.pk is None:
        raise TenantDeleted(tenant)
    row = shared.tenants().filter(pk=tenant.pk).values_list(*_VERIFIED_FIELDS).first()
    if row is None:
        raise TenantDeleted(tenant)
    values = dict(zip(_VERIFIED_FIELDS, row, strict=True))
    mine = tenant.incarnation
    # An instance read before its row was named (bulk_create, raw SQL) takes the naming.
    if mine is not None and (
        values["incarnation"] != mine or values["db_schema"] != tenant.db_schema
    ):
        raise TenantDeleted(
            tenant, "Its row now holds another incarnation of the tenant (signed up again)."
        )
    for name, value in values.items():
        setattr(tenant, name, value)
    if tenant.state != _READY:
        raise TenantNotReady(tenant, tenant.state, tenant.last_error)


# -- pickling: a tenant's classes (and fields, so querysets) by tenant, not by name --


def _reduce_class(cls: type) -> Any:
    """Pickle a tenant class as "this tenant's class of that template"; a template (or
    ``TenantModel``) by reference, as pickle would."""
    if not is_tenant_class(cls) or getattr(cls, TENANT_ATTR) is None:
        return cls.__qualname__
    model = cast("type[models.Model]", cls)
    bundle = _owner(model)
    return _unpickle_class, (bundle.schema, bundle.incarnation, model._meta.label_lower)


def _unpickle_class(schema: str, incarnation: str | None, label: str) -> type[models.Model]:
    """Find a pickled tenant class again: the same tenant's, never another incarnation's."""
    return _found(schema, incarnation).apps.get_model(label)


def _unpickle_field(
    schema: str, incarnation: str | None, label: str, name: str
) -> models.Field[Any, Any]:
    """Find a pickled field of a tenant class again (querysets pickle their fields)."""
    field = _found(schema, incarnation).apps.get_model(label)._meta.get_field(name)
    return cast("models.Field[Any, Any]", field)


def _found(schema: str, incarnation: str | None) -> factory.TenantModels:
    bundle = _bundles.get(schema)
    if bundle is not None and bundle.incarnation == incarnation:
        return bundle
    tenant = shared.tenants().filter(db_schema=schema, incarnation=incarnation).first()
    if tenant is None:
        raise TenantDeleted(
            schema, "It was pickled with classes of a tenant that no longer exists."
        )
    return tenant_models(tenant)


def _owner(model: type[models.Model]) -> factory.TenantModels:
    """Return the cached classes ``model`` belongs to (an auto-created many-to-many
    table's too, found by its registry: pickling is not a hot path)."""
    registry = model._meta.apps
    bundle = _bundles.get(getattr(model, TENANT_ATTR, None) or "")
    if bundle is None or bundle.apps is not registry:
        bundle = next((b for b in list(_bundles.values()) if b.apps is registry), None)
    if bundle is None:
        raise TenancyError(f"{model!r} is not the cached class of its tenant: it cannot pickle.")
    return bundle


_picklable_fields: dict[type, type] = {}


def _make_picklable(bundle: factory.TenantModels) -> None:
    """Give each field of a tenant's classes a ``__reduce__`` that names its tenant.

    Django pickles a field as (app label, model name, field name) and finds it in
    the global registry, where tenant classes are not: the field's class is
    swapped for a subclass (made once per field class) that pickles it as this
    tenant's field instead. Nothing else about the field changes.
    """
    for model in bundle.apps.get_models(include_auto_created=True):
        for field in (*model._meta.local_fields, *model._meta.local_many_to_many):
            cls = type(field)
            swapped = _picklable_fields.get(cls)
            if swapped is None:
                swapped = type(
                    cls.__name__,
                    (cls,),
                    {
                        "__reduce__": _reduce_field,
                        "__module__": cls.__module__,
                        "__qualname__": cls.__qualname__,
                    },
                )
                _picklable_fields[cls] = swapped
            field.__class__ = swapped


def _reduce_field(field: models.Field[Any, Any]) -> tuple[Any, ...]:
    bundle = _owner(field.model)
    args = (bundle.schema, bundle.incarnation, field.model._meta.label_lower, field.name)
    return _unpickle_field, args


copyreg.pickle(TenantModelBase, _reduce_class)


def _template(cls: Any) -> type[models.Model]:
    template = template_of(cls)
    if not is_template(template):
        raise TenancyError(
            f"{cls!r} is not a tenant model template: for_tenant() works on concrete "
            "TenantModel subclasses, not on abstract ones."
        )
    return template

"""The per-process cache of tenant classes: bounded, least recently used first out.

``Template.for_tenant(tenant)`` on a cached tenant is two dictionary look-ups.
A miss builds all of the tenant's classes at once (see :mod:`tenancy.factory`).
Evicted tenants' classes are detached from everything global and become
garbage.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from django.db import models

from tenancy import conf, factory
from tenancy.exceptions import TenancyError, TenantNotReady
from tenancy.registry import is_template, template_of

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

_bundles: OrderedDict[str, factory.TenantModels] = OrderedDict()
_lock = threading.RLock()


def model_for(template: type[models.Model], tenant: AbstractTenant) -> type[models.Model]:
    """Return the tenant's class of ``template``; the body of ``Template.for_tenant()``."""
    try:
        bundle = _bundles[tenant.db_schema]
        _bundles.move_to_end(tenant.db_schema)
        if bundle.database != tenant.database:
            raise KeyError  # the tenant moved to another database since
    except KeyError:
        bundle = tenant_models(tenant)
    except AttributeError:
        raise TypeError(
            f"for_tenant() takes a tenant (an AbstractTenant instance), not {tenant!r}."
        ) from None
    try:
        return bundle.models[template]
    except KeyError:
        return bundle.models[_template(template)]


def tenant_models(tenant: AbstractTenant, *, require_ready: bool = True) -> factory.TenantModels:
    """Return all of a tenant's classes, building and caching them on a miss.

    Raises :class:`TenantNotReady` unless the tenant is ready (the state is
    read again from the database once before refusing) or ``require_ready``
    is false, as provisioning itself needs the classes.
    """
    key = tenant.db_schema
    bundle = _bundles.get(key)
    if bundle is not None and bundle.database == tenant.database:
        return bundle
    if require_ready:
        _ensure_ready(tenant)
    with _lock:
        bundle = _bundles.get(key)
        if bundle is not None and bundle.database != tenant.database:
            del _bundles[key]
            bundle.release()
            bundle = None
        if bundle is None:
            bundle = factory.build(key, tenant.database)
            _bundles[key] = bundle
            _evict(conf.model_cache_size())
    return bundle


def cached(schema: str) -> factory.TenantModels | None:
    """Return the cached classes of the tenant stored under ``schema``, if any."""
    return _bundles.get(schema)


def evict(schema: str) -> None:
    """Forget one tenant's classes (after it is dropped or moved)."""
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


def _ensure_ready(tenant: AbstractTenant) -> None:
    from tenancy.models import TenantState

    if tenant.state == TenantState.READY:
        return
    if tenant.pk is not None:
        # The instance may be stale: a worker may have finished since it was read.
        tenant.refresh_from_db(fields=["state", "last_error", "database"])
    if tenant.state != TenantState.READY:
        raise TenantNotReady(tenant, tenant.state, tenant.last_error)


def _template(cls: Any) -> type[models.Model]:
    template = template_of(cls)
    if not is_template(template):
        raise TenancyError(
            f"{cls!r} is not a tenant model template: for_tenant() works on concrete "
            "TenantModel subclasses, not on abstract ones."
        )
    return template

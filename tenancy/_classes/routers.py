"""Database routing of tenant classes, installed automatically by the app.

A tenant's classes read and write through the alias that holds its schema.
Migrations: ``migrate`` never creates tenant tables in the shared schema,
and while :mod:`tenancy._migrating.executor` applies migrations to one tenant, only
the tenant operations run (shared ones were applied by ``migrate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.apps import apps as global_apps
from django.db import models

from tenancy._primitives import shared
from tenancy._primitives.markers import is_tenant_model

#: The alias being migrated while migrations are applied inside one tenant's storage.
_tenant_mode: ContextVar[str | None] = ContextVar("tenancy_tenant_mode", default=None)


@contextmanager
def tenant_migrations(using: str = "default") -> Iterator[None]:
    """Let only tenant operations run for the duration (see :mod:`tenancy.migrator`);
    ``RunPython`` code's queries on tenant models go to ``using``."""
    token = _tenant_mode.set(using)
    try:
        yield
    finally:
        _tenant_mode.reset(token)


class TenantRouter:
    """Route tenant classes to their tenant's database; defer on everything else."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return (
            model.__dict__.get("_tenancy_database")
            or _migrating(model)
            or _shared_for(model, hints)
        )

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self.db_for_read(model, **hints)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        # A tenant row on a tenant database may point at a shared row on the shared one.
        if _tenant_database(obj1) or _tenant_database(obj2):
            return True
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        # A RunPython or RunSQL meant for tenants says so: hints={"tenant": True}.
        tenant = bool(hints.get("tenant")) or is_tenant_model(hints.get("model"))
        if _tenant_mode.get() is not None:
            return tenant
        return False if tenant else None


def _migrating(model: type[models.Model]) -> str | None:
    """Route historical tenant models to the tenant's alias during its migrations."""
    alias = _tenant_mode.get()
    return alias if alias is not None and is_tenant_model(model) else None


def _tenant_database(obj: Any) -> str | None:
    return type(obj).__dict__.get("_tenancy_database") if obj is not None else None


def _shared_for(model: type[models.Model], hints: dict[str, Any]) -> str | None:
    """Route a shared model reached from a tenant instance to the shared database.

    Without this, Django would read ``project.owner`` on the tenant's database.
    """
    if _tenant_database(hints.get("instance")) is None:
        return None
    concrete = model._meta.concrete_model or model
    if concrete._meta.apps is not global_apps:
        return None  # a tenant's own model (such as a many-to-many table)
    return shared.database()


def install(router: Any) -> None:
    """Put a :class:`TenantRouter` first in Django's router chain, and keep it there.

    Django replaces its router list when ``DATABASE_ROUTERS`` changes (its own
    ``setting_changed`` receiver assigns a new list, after any receiver of
    ours has run), which would send tenant classes to the default database
    for the rest of a test run. So the router's class gets a ``__setattr__``
    that puts the tenant router first in any list assigned; reading the list,
    on every query, stays a plain attribute lookup.
    """
    cls = type(router)
    if not issubclass(cls, _KeepsTenantRouter):
        router.__class__ = type(cls.__name__, (_KeepsTenantRouter, cls), {})
    router.routers = router.routers


class _KeepsTenantRouter:
    """Mixed into the class of Django's ``router``: a :class:`TenantRouter` stays first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "routers":
            value = list(value)
            if not any(isinstance(r, TenantRouter) for r in value):
                value.insert(0, TenantRouter())
        super().__setattr__(name, value)

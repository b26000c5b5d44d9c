"""A tenant's classes as a copy of a prototype's, built by Django once per database.

``factory.build`` runs Django's ``ModelBase`` for every class of every
tenant; most of that work is the same for each tenant. Here the classes of
one tenant that never exists (the prototype, schema :data:`SCHEMA`) are
built once per process and database, prepared into a
:class:`~tenancy._classes.cloning.Plan`, and each tenant's classes are a copy
of them, given the tenant's names: its tables, its many-to-many tables, its
index names, its accessors on shared models. A copy is what Django would
have built (``tests/test_prototypes.py`` compares the two, object by
object), except that ``class_prepared`` is sent for the prototype's classes
only, when they are built: at start-up (:func:`prepare`, from the app's
``ready()``), so a receiver connected in the ``ready()`` of an app listed
before ``tenancy`` in ``INSTALLED_APPS`` sees them.

The prototype is built again when the templates change (a template declared
at run time). Templates the plan cannot copy are built by Django, tenant by
tenant, as before; a warning says why.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from django.core.signals import setting_changed
from django.db import models

from tenancy._classes import factory
from tenancy._classes.blueprints import Blueprint, blueprint_for
from tenancy._classes.cloning import Plan, Uncopyable
from tenancy._classes.registry import TEMPLATES, TENANT_ATTR
from tenancy._primitives import storage

__all__ = ["SCHEMA", "build", "forget", "prepare"]

logger = logging.getLogger("tenancy.classes")

#: The prototype's schema: a name no tenant can have (the naming rules refuse
#: "-"), so a table name of the prototype that reached a copy could never
#: read a tenant's rows.
SCHEMA = "-tenancy-prototype-"


@dataclass
class Prototype:
    """A prototype bundle and its plan, for the templates of ``signature``."""

    signature: tuple[Any, ...]
    bundle: factory.TenantModels
    plan: Plan | None
    labels: set[str]

    def copy(self, schema: str, database: str, incarnation: str | None) -> factory.TenantModels:
        """Return the tenant's classes: the prototype's, copied and renamed."""
        plan = cast(Plan, self.plan)
        apps = factory.TenantApps(self.labels)
        copy_of = plan.copy(apps, {TENANT_ATTR: schema, "_tenancy_database": database})
        for label, registered in self.bundle.apps.all_models.items():
            mine = apps.all_models[label]
            for name, model in registered.items():
                mine[name] = copy_of(model)
        bundle = factory.TenantModels(schema, database, apps, incarnation)
        for template, model in self.bundle.models.items():
            bundle.models[template] = copy_of(model)
        for template, model in bundle.models.items():  # parents before their children
            _personalize(blueprint_for(template), model, self.bundle.models[template])
        apps.clear_cache()
        return bundle


_prototypes: dict[str, Prototype] = {}
_lock = threading.Lock()


def build(schema: str, database: str, *, incarnation: str | None = None) -> factory.TenantModels:
    """Return the classes of the tenant stored under ``schema`` on ``database``."""
    prototype = _prototype(database)
    if prototype.plan is None:
        return factory.build(schema, database, incarnation=incarnation)
    return factory.finish(prototype.copy(schema, database, incarnation))


def prepare(databases: list[str]) -> None:
    """Build the prototypes of ``databases`` now, so that no request pays for them.

    Called once the app registry is ready (``TenancyConfig.ready``): like
    Django's own model classes, the prototype is start-up work, and a fresh
    process's first tenant then costs a copy. A prototype that cannot be
    built here (a template Django refuses, say) is left to the first tenant's
    build, which raises the error where it belongs; start-up goes on.
    """
    for database in databases:
        started = time.perf_counter()
        try:
            _prototype(database)
        except Exception as exc:
            logger.warning(
                "The tenant classes' prototype for database %r could not be built at "
                "start-up; the first tenant's build will try again (%s: %s).",
                database,
                type(exc).__name__,
                exc,
            )
            continue
        logger.debug(
            "Built the tenant classes' prototype for database %r in %.1f ms.",
            database,
            (time.perf_counter() - started) * 1000,
        )


def forget() -> None:
    """Drop every prototype: the next tenant's build makes them again."""
    with _lock:
        _prototypes.clear()


def _signature(database: str) -> tuple[Any, ...]:
    """What a prototype depends on: the templates, and how the database stores tenants."""
    return (storage.uses_schemas_alias(database), *TEMPLATES.values())


def _prototype(database: str) -> Prototype:
    signature = _signature(database)
    prototype = _prototypes.get(database)
    if prototype is not None and prototype.signature == signature:
        return prototype
    with _lock:
        prototype = _prototypes.get(database)
        if prototype is None or prototype.signature != signature:
            prototype = _make(signature, database)
            _prototypes[database] = prototype
    return prototype


def _make(signature: tuple[Any, ...], database: str) -> Prototype:
    bundle = factory.assemble(SCHEMA, database)
    factory.detach_shared_accessors(bundle)
    classes = bundle.apps.get_models(include_auto_created=True)
    for model in classes:
        model._meta._expire_cache()  # type: ignore[attr-defined]  # private API
    # Every class after its bases: a subclass's MRO is longer than each base's.
    ordered = sorted(classes, key=lambda cls: len(cls.__mro__))
    try:
        plan: Plan | None = Plan(list(ordered), bundle.apps)
    except Uncopyable as exc:
        logger.warning(
            "Tenant classes are built by Django for each tenant (slower): "
            "the templates hold an object that cannot be copied (%s).",
            exc,
        )
        plan = None
    return Prototype(signature, bundle, plan, factory.template_labels())


def _personalize(
    blueprint: Blueprint, model: type[models.Model], prototype: type[models.Model]
) -> None:
    """Give a copied class the tenant's names, as ``factory`` would have built them."""
    schema = cast(str, model.__dict__[TENANT_ATTR])
    using = model._tenancy_database  # type: ignore[attr-defined]  # set on every tenant class
    opts = model._meta
    if blueprint.proxy:
        opts.db_table = opts.concrete_model._meta.db_table  # type: ignore[union-attr]
    else:
        opts.db_table = storage.table_name(schema, blueprint.base_table, using)
        opts.original_attrs["db_table"] = opts.db_table
    names = factory.tenant_meta_names(blueprint, schema, using)
    opts.original_attrs.update(names)
    if "constraints" in names:
        opts.constraints = names["constraints"]
    if "indexes" in names:
        opts.indexes = [copy.deepcopy(index) for index in names["indexes"]]
        for index in opts.indexes:
            if not index.name:
                index.set_name_with_model(model)
    local = {f.name: f for f in (*opts.local_fields, *opts.local_many_to_many)}
    for recipe in blueprint.fields:
        if recipe.m2m_table is not None:
            m2m = cast(models.ManyToManyField, local[recipe.name])
            table = storage.table_name(schema, recipe.m2m_table, using)
            m2m.db_table = table  # type: ignore[attr-defined]  # stubs omit it
            through = m2m.remote_field.through._meta  # type: ignore[union-attr]
            through.db_table = table
            through.original_attrs["db_table"] = table
        if recipe.shared_target:
            _rename_shared_accessor(
                local[recipe.name], recipe.related_names(schema), prototype, model
            )


def _rename_shared_accessor(
    fld: Any, names: dict[str, str], prototype: type[models.Model], model: type[models.Model]
) -> None:
    """Name a relation to a shared model for the tenant, and put its reverse accessor up.

    The names are formatted as Django's ``RelatedField.contribute_to_class``
    formats them; the accessor goes where ``contribute_to_related_class``
    puts it (on the shared model for a foreign key, on the tenant's proxy of
    it for a many-to-many).
    """
    rel = fld.remote_field
    opts = model._meta
    if "related_name" in names:
        fld._related_name = names["related_name"]
        rel.related_name = names["related_name"] % {
            "class": model.__name__.lower(),
            "model_name": cast(str, opts.model_name).lower(),
            "app_label": opts.app_label.lower(),
        }
    if "related_query_name" in names:
        fld._related_query_name = names["related_query_name"]
        rel.related_query_name = names["related_query_name"] % {
            "class": model.__name__.lower(),
            "app_label": opts.app_label.lower(),
        }
    if rel.hidden:
        return
    accessor = rel.get_accessor_name()
    if fld.many_to_many:
        proto_rel = prototype._meta.get_field(fld.name).remote_field
        old = cast(str, proto_rel.get_accessor_name())  # type: ignore[union-attr]
        target = rel.model
        if old != accessor and old in target.__dict__:
            descriptor = target.__dict__[old]
            delattr(target, old)
            setattr(target, accessor, descriptor)
    else:
        setattr(rel.model._meta.concrete_model, accessor, fld.related_accessor_class(rel))


def _forget_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "DATABASES":  # an alias may now be another database
        forget()


setting_changed.connect(_forget_on_change)

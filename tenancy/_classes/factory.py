"""Build one tenant's model classes, all at once, into a private app registry.

All templates are built together for a tenant, so every reverse relation
between tenant models exists as soon as any of the tenant's classes is used
(whichever template is asked for first). The classes live in a private
:class:`TenantApps`, never in Django's global registry, so they can be
garbage-collected when the cache lets go of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import models
from django.db.migrations.state import AppConfigStub
from django.db.models import signals
from django.db.models.options import Options, make_immutable_fields_list
from django.dispatch.dispatcher import Signal, _make_id  # type: ignore[attr-defined]  # private API

from tenancy._classes import crossdb
from tenancy._classes.blueprints import Blueprint, blueprint_for
from tenancy._classes.registry import TEMPLATES, TENANT_ATTR
from tenancy._primitives import shared, storage
from tenancy._primitives.ddl import prefixed
from tenancy._primitives.markers import TEMPLATE_OF_ATTR, template_of
from tenancy.exceptions import CrossTenantRelation

if TYPE_CHECKING:
    from django.db.models.base import ModelBase

    class _RoutedClass(Protocol):
        """A class the routers send to its tenant's database (see ``routers``)."""

        _tenancy_database: str


#: Model signals whose receivers connected to a template also serve its tenant classes.
MODEL_SIGNALS: tuple[Signal, ...] = (
    signals.pre_init,
    signals.post_init,
    signals.pre_save,
    signals.post_save,
    signals.pre_delete,
    signals.post_delete,
    signals.m2m_changed,
)


class TenantApps(Apps):
    """A private app registry holding one tenant's classes."""

    def __init__(self, app_labels: set[str]) -> None:
        self._deferring = False
        super().__init__([AppConfigStub(label) for label in sorted(app_labels)])
        for config in self.app_configs.values():
            # The admin names a class's app by ``_meta.app_config.verbose_name``
            # (breadcrumbs); a stub has none of its own.
            real = global_apps.app_configs.get(config.label)
            config.verbose_name = real.verbose_name if real is not None else config.label

    def get_models(
        self, include_auto_created: bool = False, include_swapped: bool = False
    ) -> list[type[models.Model]]:
        # Apps.get_models is cached on the class: that cache would keep every
        # tenant registry (and its classes) alive for the life of the process.
        return Apps.get_models.__wrapped__(self, include_auto_created, include_swapped)  # type: ignore[attr-defined]

    def get_registered_model(self, app_label: str, model_name: str) -> type[models.Model]:
        # Relations to shared models resolve against the global registry; the
        # tenant's own classes (named like their templates) only exist here.
        try:
            return super().get_registered_model(app_label, model_name)
        except LookupError:
            return global_apps.get_registered_model(app_label, model_name)

    def clear_cache(self) -> None:
        if self._deferring or not self.ready:
            return
        for app_config in self.app_configs.values():
            for model in app_config.get_models(include_auto_created=True):
                model._meta._expire_cache()  # type: ignore[attr-defined]  # private API

    @contextmanager
    def deferred_cache_clearing(self) -> Iterator[None]:
        """Expire model caches once after registering many models, not after each."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            self.clear_cache()


class TenantModels:
    """One tenant's classes: ``models[Template]`` is the tenant's class of ``Template``."""

    __slots__ = ("__weakref__", "_extras", "apps", "database", "incarnation", "models", "schema")

    def __init__(
        self, schema: str | None, database: str, apps: TenantApps, incarnation: str | None = None
    ) -> None:
        self.schema = schema
        self.database = database
        self.incarnation = incarnation
        self.apps = apps
        self.models: dict[type[models.Model], type[models.Model]] = {}
        # Things attached to global objects, undone by release().
        self._extras: list[tuple[Any, ...]] = []

    def __repr__(self) -> str:
        return f"<TenantModels {self.schema!r} on {self.database!r}: {len(self.models)} models>"

    def tables(self) -> list[type[models.Model]]:
        """Return the classes that own a table (no proxies), auto-created ones excluded."""
        return [m for m in self.models.values() if not m._meta.proxy]

    def release(self) -> None:
        """Detach the classes from everything global, so they can be collected."""
        for kind, *args in self._extras:
            if kind == "receiver":
                signal, receiver, sender, uid = args
                signal.disconnect(receiver, sender=sender, dispatch_uid=uid)
            elif kind == "accessor":
                target, name, rel = args
                descriptor = target.__dict__.get(name)
                # Reverse many-to-one and many-to-many descriptors keep the relation in
                # ``.rel``; Django's ReverseOneToOneDescriptor keeps it in ``.related``.
                if rel in (getattr(descriptor, "rel", None), getattr(descriptor, "related", None)):
                    delattr(target, name)
        self._extras.clear()


def build(schema: str | None, database: str, *, incarnation: str | None = None) -> TenantModels:
    """Build every template's class for the tenant stored under ``schema``, with Django.

    With ``schema=None``, build the classes as the templates declare them
    (plain table names): the reference from which migration state is taken.
    The cache copies a prototype instead (see :mod:`tenancy._classes.prototypes`).
    """
    return finish(assemble(schema, database, incarnation=incarnation))


def assemble(schema: str | None, database: str, *, incarnation: str | None = None) -> TenantModels:
    """Make the classes (Django's ``ModelBase`` at work), before anything global sees them."""
    labels = template_labels()
    blueprints = [blueprint_for(t) for t in TEMPLATES.values()]
    shared_models = {m for bp in blueprints for m in bp.shared_targets}
    bundle = TenantModels(schema, database, TenantApps(labels), incarnation)
    with bundle.apps.deferred_cache_clearing():
        for model in shared_models:
            _shared_proxy(model, bundle.apps)
        for template in _ordered(TEMPLATES.values()):
            bundle.models[template] = _build_class(blueprint_for(template), bundle)
    for model in bundle.apps.get_models(include_auto_created=True):
        if model._meta.auto_created:  # many-to-many tables route with their tenant
            cast("_RoutedClass", model)._tenancy_database = database
    return bundle


def template_labels() -> set[str]:
    """Return the app labels of a tenant's registry: the templates' and their shared targets'."""
    labels = {t._meta.app_label for t in TEMPLATES.values()}
    for template in TEMPLATES.values():
        labels |= {m._meta.app_label for m in blueprint_for(template).shared_targets}
    return labels


def finish(bundle: TenantModels) -> TenantModels:
    """Connect a tenant's assembled classes to the world: signals, accessors, guards."""
    for template, model in bundle.models.items():
        if bundle.schema is not None:
            _copy_receivers(template, model, bundle)
        _record_shared_accessors(model, bundle)
    if bundle.schema is not None:
        _split_cross_database_many_to_many(bundle)
        _guard_relations(bundle)
    return bundle


def detach_shared_accessors(bundle: TenantModels) -> None:
    """Take an assembled bundle's accessors off the shared models (a prototype's)."""
    for model in bundle.models.values():
        _record_shared_accessors(model, bundle)
    bundle.release()


_guarded_descriptors: dict[type, type] = {}


def _guard_relations(bundle: TenantModels) -> None:
    """Make a forward relation between tenant classes refuse another tenant's row by name.

    Django would say the row "must be a Project instance", which it is, of another
    tenant's class: the error says whose it is instead.
    """
    for model in bundle.models.values():
        for fld in model._meta.local_fields:
            if not (fld.many_to_one or fld.one_to_one) or fld.name not in model.__dict__:
                continue
            target = cast(models.ForeignObjectRel, fld.remote_field).model
            if not isinstance(target, type) or TENANT_ATTR not in target.__dict__:
                continue
            descriptor = model.__dict__[fld.name]
            cls = type(descriptor)
            guarded = _guarded_descriptors.get(cls)
            if guarded is None:
                guarded = type(cls.__name__, (_SameTenantDescriptor, cls), {})
                _guarded_descriptors[cls] = guarded
            descriptor.__class__ = guarded


class _SameTenantDescriptor:
    """The ``__set__`` of a forward relation of a tenant class (mixed into Django's)."""

    field: Any

    def __set__(self, instance: Any, value: Any) -> None:
        target = self.field.remote_field.model._meta.concrete_model
        if (
            value is not None
            and not isinstance(value, target)
            and TENANT_ATTR in type(value).__dict__
            and isinstance(value, template_of(target))
        ):
            raise CrossTenantRelation(value, instance, self.field.name)
        super().__set__(instance, value)  # type: ignore[misc]  # Django's descriptor follows


def _split_cross_database_many_to_many(bundle: TenantModels) -> None:
    """On a database without the shared tables, read many-to-many to them in two steps."""
    candidates = [m for m in bundle.models.values() if m._meta.local_many_to_many]
    if not candidates:
        return
    alias = shared.database()
    if alias == bundle.database:
        return
    for model in candidates:
        crossdb.split_shared_many_to_many(model, bundle.apps, bundle.database, alias)


def _ordered(templates: Any) -> list[type[models.Model]]:
    """Return templates with every parent before its children."""
    done: dict[type[models.Model], None] = {}

    def visit(template: type[models.Model]) -> None:
        if template in done:
            return
        for parent in blueprint_for(template).depends_on:
            visit(parent)
        done[template] = None

    for template in templates:
        visit(template)
    return list(done)


def _build_class(blueprint: Blueprint, bundle: TenantModels) -> type[models.Model]:
    template = blueprint.template
    schema, using = bundle.schema, bundle.database
    meta_attrs: dict[str, Any] = dict(blueprint.meta)
    meta_attrs["app_label"] = template._meta.app_label
    meta_attrs["apps"] = bundle.apps
    if blueprint.proxy:
        meta_attrs["proxy"] = True
    elif schema is not None:
        meta_attrs["db_table"] = storage.table_name(schema, blueprint.base_table, using)
    elif blueprint.table_declared:
        meta_attrs["db_table"] = blueprint.base_table
    if schema is not None:
        meta_attrs.update(tenant_meta_names(blueprint, schema, using))
    attrs: dict[str, Any] = {
        "__module__": template.__module__,
        "__qualname__": template.__qualname__,
        "Meta": type("Meta", (), meta_attrs),
        TENANT_ATTR: schema,
        "_tenancy_database": using,
        TEMPLATE_OF_ATTR: template,
    }
    for recipe in blueprint.fields:
        attrs[recipe.name] = recipe.build(schema, using)
    bases: tuple[type, ...] = (template,)
    if blueprint.parent is not None:
        parent = bundle.models[blueprint.parent]
        bases = (parent, template)
        if not blueprint.proxy:
            ptr = f"{blueprint.parent._meta.model_name}_ptr"
            attrs[ptr] = models.OneToOneField(
                parent,
                models.CASCADE,
                parent_link=True,
                auto_created=True,
                primary_key=True,
                serialize=False,
                related_name=template._meta.model_name,
            )
    metaclass: type[ModelBase] = type(template)
    model = cast("type[models.Model]", metaclass(template.__name__, bases, attrs))
    _inherit_exceptions(model, template, bases)
    return model


def _shared_proxy(model: type[models.Model], registry: TenantApps) -> type[models.Model]:
    """Register a proxy of a shared model in the tenant's registry.

    Relations from tenant classes point to it, so the shared model's reverse
    relations to this tenant (needed by many-to-many queries) live in the
    tenant's registry instead of on the global model.
    """
    meta = type("Meta", (), {"proxy": True, "apps": registry, "app_label": model._meta.app_label})
    attrs = {"__module__": model.__module__, "__qualname__": model.__qualname__, "Meta": meta}
    proxy = _proxy_metaclass(type(model))(model.__name__, (model,), attrs)
    proxy._meta.__class__ = SharedProxyOptions
    return proxy


class SharedProxyOptions(Options):
    """``_meta`` of a shared model's proxy: adds the tenant's relations to it.

    Django gives a proxy the reverse relations of its concrete model, which
    live in the global registry; the tenant's relations to the shared model
    live in the tenant's registry and are added here.
    """

    def _get_fields(
        self,
        forward: bool = True,
        reverse: bool = True,
        include_parents: Any = True,
        include_hidden: bool = False,
        topmost_call: bool = True,
    ) -> Any:
        fields = super()._get_fields(
            forward, reverse, include_parents, include_hidden, topmost_call
        )
        if not (reverse and topmost_call):
            return fields
        extra = [rel for rel in self._tenant_relations() if include_hidden or not rel.hidden]
        return make_immutable_fields_list("get_fields()", (*fields, *extra))

    def _tenant_relations(self) -> list[Any]:
        rels = self.__dict__.get("_tenancy_relations")
        if rels is not None:
            return rels
        rels = [
            fld.remote_field
            for model in self.apps.get_models(include_auto_created=True)
            if model is not self.model
            for fld in (*model._meta.local_fields, *model._meta.local_many_to_many)
            if fld.is_relation
            and cast(models.ForeignObjectRel, fld.remote_field).model is self.model
        ]
        if not cast(TenantApps, self.apps)._deferring:  # only ever a tenant's registry
            self.__dict__["_tenancy_relations"] = rels
        return rels


_proxy_metaclasses: dict[type, type] = {}


def _proxy_metaclass(metaclass: type) -> type:
    """Return a metaclass whose classes accept instances of their shared model.

    ``project.watchers.add(user)`` checks ``isinstance(user, <the proxy>)``;
    a plain ``User`` must pass.
    """
    proxy_metaclass = _proxy_metaclasses.get(metaclass)
    if proxy_metaclass is None:

        def __instancecheck__(cls: Any, instance: Any) -> bool:
            return isinstance(instance, cls._meta.concrete_model)

        proxy_metaclass = type(
            f"SharedProxy{metaclass.__name__}",
            (metaclass,),
            {"__instancecheck__": __instancecheck__},
        )
        _proxy_metaclasses[metaclass] = proxy_metaclass
    return proxy_metaclass


def tenant_meta_names(blueprint: Blueprint, schema: str, using: str) -> dict[str, list[Any]]:
    """Return the template's indexes and constraints as a tenant's class declares them.

    On prefix backends explicit names are made unique per tenant: SQLite has
    one namespace of index names per database, where PostgreSQL has one per
    schema.
    """
    names = {k: blueprint.meta[k] for k in ("indexes", "constraints") if k in blueprint.meta}
    if storage.uses_schemas_alias(using):
        return names
    return {key: [prefixed(obj, schema) for obj in objs] for key, objs in names.items()}


def _inherit_exceptions(model: type, template: type, bases: tuple[type, ...]) -> None:
    """Give the tenant class its template's exceptions.

    Shared by every tenant (two classes less per model and tenant), so
    ``except Project.DoesNotExist`` catches every tenant's, and a parent
    template's exception catches its children's (the template exceptions
    are derived along template inheritance).
    """
    for name in ("DoesNotExist", "MultipleObjectsReturned"):
        setattr(model, name, getattr(template, name))


def _copy_receivers(template: type, model: type, bundle: TenantModels) -> None:
    """Connect the template's signal receivers to its tenant class too."""
    sender_id = _make_id(template)
    for signal in MODEL_SIGNALS:
        # Entries are (key, receiver, is_async); Django 6.0 added the sender's
        # weak reference: (key, receiver, sender_ref, is_async).
        for (receiver_key, key_sender), receiver, *_rest in list(signal.receivers):
            if key_sender != sender_id:
                continue
            weak = isinstance(receiver, weakref.ReferenceType)
            func = receiver() if weak else receiver
            if func is None:
                continue
            uid = receiver_key if isinstance(receiver_key, str) else None
            signal.connect(func, sender=model, weak=weak, dispatch_uid=uid)
            bundle._extras.append(("receiver", signal, func, model, uid))


def _record_shared_accessors(model: type[models.Model], bundle: TenantModels) -> None:
    """Remember reverse accessors that relations to shared models set on them."""
    for fld in (*model._meta.local_fields, *model._meta.local_many_to_many):
        if not fld.is_relation:
            continue
        rel = cast(models.ForeignObjectRel, fld.remote_field)  # set on every relation
        if rel.hidden:
            continue
        target = rel.model
        if TENANT_ATTR in target.__dict__:
            continue
        name = rel.get_accessor_name()
        bundle._extras.append(("accessor", target._meta.concrete_model, name, rel))

"""Per-template recipes, prepared once per process, for building tenant classes fast.

Deconstructing a field and resolving its relations is the slow part of
building a model class. A :class:`Blueprint` does it once per template; each
tenant build then only calls the field constructors with prepared arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as global_apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models
from django.db.backends.utils import truncate_name

from tenancy._classes.registry import TEMPLATES, is_template, template_parent
from tenancy._primitives import storage

#: Meta options a tenant class never takes from its template.
_SKIPPED_META = frozenset({"abstract", "proxy", "db_table", "app_label", "apps"})


@dataclass(frozen=True)
class FieldRecipe:
    """How to construct one field of a tenant class."""

    name: str
    field_class: type[models.Field]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: Base table of an auto-created many-to-many table, qualified per tenant.
    m2m_table: str | None = None
    #: Related names to a shared model, where ``%(class)s`` is made tenant-unique.
    shared_target: bool = False
    #: Whether the template declared the many-to-many table's name itself.
    m2m_declared: bool = False

    def build(self, schema: str | None, using: str) -> models.Field:
        """Construct the field for ``schema``; for None, as declared (migration state)."""
        kwargs = self.kwargs
        if schema is None:
            if self.m2m_declared:
                kwargs = {**kwargs, "db_table": self.m2m_table}
            return self.field_class(*self.args, **kwargs)
        if self.m2m_table is not None or self.shared_target:
            kwargs = dict(kwargs)
            if self.m2m_table is not None:
                kwargs["db_table"] = storage.table_name(schema, self.m2m_table, using)
            kwargs.update(self.related_names(schema))
        return self.field_class(*self.args, **kwargs)

    def related_names(self, schema: str) -> dict[str, str]:
        """Return the related names of a relation to a shared model, unique per tenant.

        The reverse accessor lives on the shared model, so ``%(class)s`` is
        made to name the tenant too. Names without it are the same for every
        tenant, and left out.
        """
        if not self.shared_target:
            return {}
        return {
            key: value.replace("%(class)s", f"{schema}_%(class)s")
            for key in ("related_name", "related_query_name")
            if isinstance(value := self.kwargs.get(key), str) and "%(class)s" in value
        }


@dataclass
class Blueprint:
    """Everything needed to build a template's class for one tenant."""

    template: type[models.Model]
    base_table: str
    #: Whether the template declared ``Meta.db_table`` itself.
    table_declared: bool
    fields: list[FieldRecipe]
    meta: dict[str, Any]
    parent: type[models.Model] | None
    proxy: bool
    #: Labels of the models this template's class needs built first.
    depends_on: list[type[models.Model]] = field(default_factory=list)
    #: Shared (global) models that this template's relations point to.
    shared_targets: list[type[models.Model]] = field(default_factory=list)


def blueprint_for(template: type[models.Model]) -> Blueprint:
    """Return the blueprint of ``template``, preparing it on first use."""
    blueprint = template.__dict__.get("_tenancy_blueprint")
    if blueprint is None:
        blueprint = _prepare(template)
        template._tenancy_blueprint = blueprint  # type: ignore[attr-defined]
    return blueprint


def base_table(template: type[models.Model]) -> str:
    """Return the unqualified table name of a template, as Django would name it."""
    declared = template._meta.original_attrs.get("db_table")
    if declared:
        return str(declared)
    return truncate_name(
        f"{template._meta.app_label}_{template._meta.model_name}",
        connections["default"].ops.max_name_length(),
    )


def _prepare(template: type[models.Model]) -> Blueprint:
    opts = template._meta
    own = template._tenancy_own_fields  # type: ignore[attr-defined]
    table = base_table(template)
    recipes = [
        _recipe(template, f, table)
        for f in (*opts.local_fields, *opts.local_many_to_many)
        if f.name in own
    ]
    meta = {k: v for k, v in opts.original_attrs.items() if k not in _SKIPPED_META}
    parent = template_parent(template)
    return Blueprint(
        template=template,
        base_table=table,
        table_declared=bool(opts.original_attrs.get("db_table")),
        fields=recipes,
        meta=meta,
        parent=parent,
        proxy=template._tenancy_proxy,  # type: ignore[attr-defined]
        depends_on=[parent] if parent is not None else [],
        shared_targets=_shared_targets(template, recipes),
    )


def _shared_targets(template: type[models.Model], recipes: list[FieldRecipe]) -> list[Any]:
    targets = []
    for recipe in recipes:
        if recipe.shared_target:
            target = resolve_label(template, recipe.kwargs["to"])
            targets.append(target._meta.concrete_model)  # type: ignore[union-attr]
    return targets


def _recipe(template: type[models.Model], fld: models.Field, table: str) -> FieldRecipe:
    name, _path, args, kwargs = fld.deconstruct()
    if not fld.is_relation:
        return FieldRecipe(name, type(fld), tuple(args), kwargs)
    target = resolve_label(template, kwargs["to"])
    shared = target is not None and not is_template(target)
    if target is not None:
        # Shared targets resolve to the tenant registry's proxy of the shared model.
        kwargs["to"] = target._meta.label
    m2m_table = None
    m2m_declared = False
    if fld.many_to_many:
        through = kwargs.get("through")
        if through is None:
            m2m_declared = bool(fld.db_table)  # type: ignore[attr-defined]  # stubs omit it
            m2m_table = fld.db_table or truncate_name(  # type: ignore[attr-defined]  # stubs omit it
                f"{table}_{fld.name}", connections["default"].ops.max_name_length()
            )
            kwargs.pop("db_table", None)
        else:
            through_model = resolve_label(template, through)
            if through_model is None or not is_template(through_model):
                raise ImproperlyConfigured(
                    f"{template._meta.label}.{name}: the 'through' model of a tenant "
                    "many-to-many must itself be a tenant model."
                )
            kwargs["through"] = through_model._meta.label
    return FieldRecipe(name, type(fld), tuple(args), kwargs, m2m_table, shared, m2m_declared)


def resolve_label(template: type[models.Model], reference: Any) -> type[models.Model] | None:
    """Resolve a relation target of ``template`` to a template or a shared model.

    Returns None for ``"self"`` (the tenant class itself).
    """
    if isinstance(reference, type):
        return reference
    reference = str(reference)
    if reference == "self":
        return None
    if "." not in reference:
        reference = f"{template._meta.app_label}.{reference}"
    label = reference.lower()
    if label in TEMPLATES:
        return TEMPLATES[label]
    try:
        return global_apps.get_model(reference)
    except LookupError:
        raise ImproperlyConfigured(
            f"{template._meta.label} refers to {reference!r}, which is neither an "
            "installed model nor a tenant model template."
        ) from None

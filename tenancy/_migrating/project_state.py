"""Tenant models in Django's migration state, so ``makemigrations`` sees them.

Templates are abstract models, invisible to the migration autodetector.
:func:`install` extends ``ProjectState.from_apps`` so that the state of the
project's models includes one model per template, taken from a reference
build of the templates (plain table names), marked with :class:`PerTenant`
in its bases. The marker is written into the migration files, so migration
operations on tenant models can be told apart for as long as the migrations
exist, even after a template is deleted: ``migrate`` skips them on shared
databases and :mod:`tenancy._migrating.executor` applies them per tenant.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db import models
from django.db.migrations.state import ModelState, ProjectState

from tenancy._classes import factory
from tenancy._classes.registry import TEMPLATES, is_template, template_of
from tenancy.state import PerTenant

__all__ = ["install", "template_model_states"]


def template_model_states() -> list[ModelState]:
    """Return the migration state of every template, as ``makemigrations`` should see it."""
    if not TEMPLATES:
        return []
    bundle = factory.build(None, "default")
    try:
        return [_model_state(model) for model in bundle.models.values()]
    finally:
        bundle.release()


def _model_state(model: type[models.Model]) -> ModelState:
    state = ModelState.from_model(model)
    state.bases = declared_bases(template_of(model))
    return state


def declared_bases(template: type) -> tuple[Any, ...]:
    """Return the bases a template's migration state is written with, as declared.

    The bases the user wrote, in their order, as Django writes a concrete
    model's: a parent template by its label, an abstract model replaced by its
    own bases, a plain mixin as is. A root template is marked
    ``(PerTenant, *mixins, models.Model)``; a child names its parent template
    (which carries the mark) and its own mixins, so any order of bases that
    Django allows renders (the tenant classes themselves are built with other
    bases, which must not leak into the migration files).
    """
    bases: list[Any] = []
    for base in template.__bases__:
        for flat in _flattened(base):
            if flat not in bases:
                bases.append(flat)
    if any(isinstance(base, str) for base in bases):
        return tuple(base for base in bases if base is not models.Model)
    mixins = [base for base in bases if base is not models.Model]
    return (PerTenant, *mixins, models.Model)


def _flattened(base: type) -> list[Any]:
    if is_template(base):
        return [base._meta.label_lower]  # type: ignore[attr-defined]  # a template is a model
    meta = getattr(base, "_meta", None)
    if meta is not None and meta.abstract:
        # Django writes an abstract model's bases in its place (its fields are copied).
        return [flat for parent in base.__bases__ for flat in _flattened(parent)]
    return [base]


_original_from_apps = ProjectState.from_apps.__func__  # type: ignore[attr-defined]


def _from_apps(cls: type[ProjectState], apps: Any) -> ProjectState:
    state = _original_from_apps(cls, apps)
    if apps is global_apps:
        for model_state in template_model_states():
            state.add_model(model_state)
    return state


def install() -> None:
    """Make ``ProjectState.from_apps(apps)`` include the tenant models (idempotent)."""
    ProjectState.from_apps = classmethod(_from_apps)  # type: ignore[method-assign,assignment]

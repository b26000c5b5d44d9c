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
from tenancy._classes.registry import TEMPLATES
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
    if not any(isinstance(base, str) for base in state.bases):
        # A root tenant model: mark it (children inherit the mark from it).
        mixins = tuple(b for b in state.bases if b is not models.Model)
        state.bases = (PerTenant, *mixins, models.Model)  # type: ignore[arg-type]  # stubs: bases also takes mixins
    return state


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

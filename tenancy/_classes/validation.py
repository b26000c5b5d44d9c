"""Structural checks of the configuration, run in ``AppConfig.ready()``.

What is checked here cannot work at all, so it raises ``ImproperlyConfigured``
at start-up instead of failing later inside a request or a worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from tenancy._classes.blueprints import resolve_label
from tenancy._classes.registry import TEMPLATES, is_template
from tenancy._primitives import shared


def check_template_relations(templates: Iterable[type[models.Model]]) -> None:
    """Refuse relations from tenant models to shared models that would collide.

    A reverse accessor that a tenant class sets on a shared model must be
    unique per tenant: its related name must end with '+' (no accessor) or
    contain '%(class)s' (made unique per tenant).
    """
    for template in templates:
        for field in (*template._meta.local_fields, *template._meta.local_many_to_many):
            if not field.is_relation:
                continue
            rel = cast(models.ForeignObjectRel, field.remote_field)  # set on every relation
            target = resolve_label(template, rel.model)
            if target is None or is_template(target):
                continue
            name = rel.related_name or template._meta.default_related_name
            if name and (name.endswith("+") or "%(class)s" in name):
                continue
            raise ImproperlyConfigured(
                f"{template._meta.label}.{field.name} points to the shared model "
                f"{target._meta.label} with related_name={name!r}: every tenant would add "
                f"the same reverse accessor to {target.__name__}. Use related_name='+' "
                "(no reverse accessor) or a name containing '%(class)s'."
            )


def check_shared_relations(shared_models: Iterable[type[models.Model]]) -> None:
    """Refuse relations from shared models to tenant models (no table to point at)."""
    for model in shared_models:
        for field in (*model._meta.local_fields, *model._meta.local_many_to_many):
            target = getattr(field.remote_field, "model", None)
            if target is None:
                continue
            label = target if isinstance(target, str) else target._meta.label
            if "." not in label:
                label = f"{model._meta.app_label}.{label}"
            if label.lower() in TEMPLATES or is_template(target):
                raise ImproperlyConfigured(
                    f"{model._meta.label}.{field.name} points from a shared model to the tenant "
                    f"model {label}, whose rows live in each tenant's schema: a shared row "
                    "cannot reference them. Point from the tenant model to the shared one "
                    "instead, or store the tenant-side id in a plain field."
                )


def check_all() -> None:
    """Run every structural check on the installed models."""
    shared.tenant_model()
    check_template_relations(TEMPLATES.values())
    check_shared_relations(apps.get_models(include_auto_created=True))

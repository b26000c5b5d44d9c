"""The shared tables that tenant tables reference, and what they reference in turn.

On Citus a tenant's tables are single-shard tables on some worker node, and a
foreign key from one of them may only point at a table present on every node:
a *reference table*. That is every shared model a template relates to, plus
(since a reference table's own foreign keys must point at reference tables
too) every shared model those reach through their foreign keys.
"""

from __future__ import annotations

from django.db import models

from tenancy._classes.blueprints import blueprint_for
from tenancy._classes.registry import TEMPLATES
from tenancy._primitives import citus


def referenced_shared_models() -> list[type[models.Model]]:
    """Return the shared models tenant tables reach, referenced ones before their referrers.

    Making a table a reference table needs the tables it points at to be
    reference tables already, so the order is the order to convert them in.
    """
    roots: list[type[models.Model]] = []
    for template in TEMPLATES.values():
        roots.extend(blueprint_for(template).shared_targets)
    ordered: list[type[models.Model]] = []
    seen: set[type[models.Model]] = set()

    def visit(model: type[models.Model]) -> None:
        model = model._meta.concrete_model or model
        if model in seen or not model._meta.managed:
            return
        seen.add(model)
        for field in model._meta.concrete_fields:
            target = getattr(field.remote_field, "model", None)
            constrained = getattr(field, "db_constraint", False)
            if isinstance(target, type) and constrained and target is not model:
                visit(target)
        ordered.append(model)

    for root in sorted(roots, key=lambda m: m._meta.label):
        visit(root)
    return ordered


def missing_reference_tables(using: str) -> list[str]:
    """Return the tables of :func:`referenced_shared_models` on the Citus database
    ``using`` that exist and are not reference tables, in conversion order.

    A table not created yet (before ``migrate``) is not reported: the check
    runs again after it.
    """
    tables = [model._meta.db_table for model in referenced_shared_models()]
    return citus.non_reference_tables(tables, using)

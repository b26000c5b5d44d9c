"""Database routing of tenant classes, installed automatically by the app.

A tenant's classes read and write through the alias that holds its schema,
and tenant templates never get tables from ``migrate`` on shared databases.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class TenantRouter:
    """Route tenant classes to their tenant's database; defer on everything else."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return model.__dict__.get("_tenancy_database")

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return model.__dict__.get("_tenancy_database")


def install(router: Any) -> None:
    """Put a :class:`TenantRouter` first in Django's router chain, once."""
    routers = router.routers
    if not any(isinstance(r, TenantRouter) for r in routers):
        routers.insert(0, TenantRouter())

"""The mark of tenant models in migration files: ``bases=(tenancy.state.PerTenant, ...)``.

``makemigrations`` writes this class into the bases of every tenant model's
``CreateModel``, so that migration operations on tenant models can be told
apart for as long as the migrations exist: ``migrate`` skips them on shared
databases and ``tenancy_migrate`` applies them per tenant. Its import path is
part of the public API because migration files name it.
"""

from __future__ import annotations

__all__ = ["PerTenant"]


class PerTenant:
    """Marks a model of the migration state as a tenant model: one table per tenant."""

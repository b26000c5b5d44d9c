"""Many-to-many relations from tenant rows to shared rows on another database.

``project.watchers.all()`` is, for Django, one query: the shared model joined
with the tenant's through table. When the tenant lives on a database other
than the shared one, no database holds both tables, so the join cannot run.
For those tenants the forward manager is replaced by one that reads in two
steps: the target ids from the through table on the tenant's database, then
the shared rows by id on the shared database. Writes (``add``, ``remove``,
``clear``, ``set``) already touch the through table only and are kept.

The id query runs only when the queryset is evaluated (Django's deferred
filter), so ``prefetch_related()``, which fills each manager's cache itself,
costs two queries in all, whatever the number of instances.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps as global_apps
from django.db import models
from django.db.models.fields.related_descriptors import ManyToManyDescriptor


class ThroughIds:
    """The target ids of one instance's through rows, read once, when first iterated.

    Passed to ``pk__in`` of a deferred filter: Django iterates it only when
    the queryset's SQL is built, so an unevaluated (or prefetched) manager
    costs no query.
    """

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self._ids: list[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        if self._ids is None:
            manager = self.manager
            through = manager.through._default_manager.using(manager.tenant_database)
            rows = through.filter(**{manager.source_field.attname: manager.related_val[0]})
            self._ids = list(rows.values_list(manager.target_field.attname, flat=True))
        return iter(self._ids)


class SplitManyToManyDescriptor(ManyToManyDescriptor):
    """The forward side of a tenant -> shared many-to-many, for a non-shared database."""

    def __init__(self, rel: Any, tenant_database: str, shared_database: str) -> None:
        super().__init__(rel, reverse=False)
        self.tenant_database = tenant_database
        self.shared_database = shared_database

    @cached_property
    def related_manager_cls(self) -> type:
        base = super().related_manager_cls
        return type(
            "SplitManyRelatedManager",
            (SplitManagerMixin, base),
            {
                "tenant_database": self.tenant_database,
                "shared_database": self.shared_database,
                "django_manager": base,
            },
        )


class SplitManagerMixin:
    """Overrides of Django's ``ManyRelatedManager`` that never join across databases."""

    tenant_database: str
    shared_database: str
    #: Django's ManyRelatedManager class this one extends.
    django_manager: type
    # Set by Django's ManyRelatedManager.__init__:
    instance: models.Model
    through: type[models.Model]
    source_field: Any
    target_field: Any
    related_val: tuple[Any, ...]
    prefetch_cache_name: str

    if TYPE_CHECKING:
        # Django's ManyRelatedManager's, after this mixin in the MRO.
        def get_queryset(self) -> models.QuerySet[Any]: ...

    def _target_lookup(self) -> str:
        return f"{self.target_field.target_field.attname}__in"

    def _apply_rel_filters(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        queryset._add_hints(instance=self.instance)  # type: ignore[attr-defined]  # private API, as Django's
        queryset = queryset.using(self.shared_database)
        queryset._defer_next_filter = True  # type: ignore[attr-defined]  # private API, as Django's
        return queryset.filter(**{self._target_lookup(): ThroughIds(self)})

    def using(self, alias: str) -> models.QuerySet[Any]:
        """Read the related rows where they live, whatever ``alias`` says.

        Django's ``set()`` asks for them ``using`` the through table's
        database, where the shared table is not.
        """
        return self.get_queryset()

    def get_prefetch_querysets(
        self, instances: list[models.Model], querysets: list[Any] | None = None
    ) -> tuple[Any, ...]:
        """Two queries for all ``instances``: their through rows, then the shared rows."""
        if querysets and len(querysets) != 1:
            raise ValueError(
                "querysets argument of get_prefetch_querysets() should have a length of 1."
            )
        source = self.source_field
        targets_attname = self.target_field.attname
        through = self.through._default_manager.using(self.tenant_database)
        keys = {source.get_foreign_related_value(instance)[0] for instance in instances}
        pairs = list(
            through.filter(**{f"{source.attname}__in": keys}).values_list(
                source.attname, targets_attname
            )
        )
        # Without one given: the related model's own queryset, without this manager's filter.
        own = cast("models.Manager[Any]", super(self.django_manager, self))
        queryset = querysets[0] if querysets else own.get_queryset()
        queryset = queryset.using(queryset._db or self.shared_database)  # type: ignore[union-attr]  # private API, as Django's
        wanted = {target for _, target in pairs}
        key = self.target_field.target_field.attname
        found = {getattr(row, key): row for row in queryset.filter(**{f"{key}__in": wanted})}
        related = []
        for owner, target in pairs:
            if target in found:
                row = copy.copy(found[target])  # one object per link, as Django's join gives
                row._tenancy_prefetch_owner = owner
                related.append(row)
        return (
            related,
            lambda row: (row._tenancy_prefetch_owner,),
            lambda instance: (source.get_foreign_related_value(instance)[0],),
            False,
            self.prefetch_cache_name,
            False,
        )


def split_shared_many_to_many(
    model: type[models.Model], registry: Any, tenant_database: str, shared_database: str
) -> None:
    """Give ``model``'s many-to-many fields to shared models the two-step manager."""
    for field in model._meta.local_many_to_many:
        target = field.remote_field.model
        if target._meta.proxy and target._meta.apps is registry and _is_shared(target):
            descriptor = SplitManyToManyDescriptor(
                field.remote_field, tenant_database, shared_database
            )
            setattr(model, field.name, descriptor)


def _is_shared(model: type[models.Model]) -> bool:
    concrete = model._meta.concrete_model
    return concrete is not None and concrete._meta.apps is global_apps

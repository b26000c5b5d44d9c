"""Migrations on backends without schemas (SQLite): historical models rendered per tenant.

On PostgreSQL a tenant's migrations run with its schema on the
``search_path``, so the historical models keep their plain table names. SQLite
has no schemas: a tenant's tables are prefixed, and so are its explicit index
and constraint names, since SQLite has one namespace of index names per
database.

The migration state itself stays as the migration files declare it, so that
every operation finds what it names and derives what Django derives from it:
``RemoveIndex``, ``RemoveConstraint``, ``RenameIndex`` and ``AlterConstraint``
look indexes and constraints up by their declared names; ``RenameModel`` and
``AlterModelTable`` change the declared table (or the default one, which
follows the model's name), and the many-to-many tables derived from it follow;
``SeparateDatabaseAndState`` derives the states of its own operations from the
tenant's. Only the *rendering* is per tenant: in the state that
:func:`tenant_state` returns, and in every state cloned from it, the
historical tenant models are rendered on the tenant's prefixed tables, with
the tenant's index and constraint names. The names of the indexes and
constraints that operations hand the schema editor straight from the state
are prefixed by the editor (:mod:`tenancy._primitives.ddl`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.db import connections, models
from django.db.migrations.migration import Migration
from django.db.migrations.state import ModelState, ProjectState, StateApps
from django.utils.functional import cached_property

from tenancy._migrating.plan import tenant_models_in
from tenancy._primitives import storage
from tenancy._primitives.ddl import prefixed, tenant_schema_editor
from tenancy._primitives.markers import is_tenant_model


def apply(migration: Migration, state: ProjectState, schema: str, using: str) -> ProjectState:
    """Apply a migration to the tenant's prefixed tables, as Django applies it."""
    with tenant_schema_editor(connections[using], atomic=False, prefix=schema) as editor:
        return migration.apply(tenant_state(state, schema), editor)


def unapply(migration: Migration, state: ProjectState, schema: str, using: str) -> ProjectState:
    """Un-apply a migration from the tenant's prefixed tables, as Django does: each
    operation's ``database_backwards``, last operation first. ``state`` is the state
    before the migration."""
    with tenant_schema_editor(connections[using], atomic=False, prefix=schema) as editor:
        return migration.unapply(tenant_state(state, schema), editor)


def tenant_state(state: ProjectState, schema: str) -> ProjectState:
    """Return ``state`` as the tenant ``schema`` sees it (idempotent).

    The result shares ``state``'s model states: hand over a state of your own
    (such as a clone) and use the result instead. If ``state`` is rendered, its
    tenant models, and the models related to them, are rendered again for the
    tenant; the others are kept.
    """
    if isinstance(state, _TenantState) and state.tenancy_schema == schema:
        return state
    tenant = _TenantState(schema, state.models, state.real_apps)
    if "apps" in state.__dict__:  # rendered: render again only what the tenant changes
        tenant.apps = _TenantApps.of(state.apps.clone(), schema)
        tenant.reload_models(
            [(m.app_label, m.name_lower) for m in tenant_models_in(tenant)], delay=True
        )
    return tenant


class _TenantState(ProjectState):
    """A migration state whose historical models are rendered for one tenant.

    Its clones are too: operations clone the state they are given, and derive
    further states from the clones (``SeparateDatabaseAndState``).
    """

    def __init__(
        self,
        schema: str,
        models: dict[tuple[str, str], ModelState] | None = None,
        real_apps: set[str] | None = None,
    ) -> None:
        super().__init__(models, real_apps)
        self.tenancy_schema = schema

    @cached_property
    def apps(self) -> StateApps:
        return _TenantApps(self.real_apps, self.models, self.tenancy_schema)

    def clone(self) -> ProjectState:
        clone = super().clone()  # ProjectState.clone() builds a plain ProjectState
        clone.__class__ = _TenantState
        cast(_TenantState, clone).tenancy_schema = self.tenancy_schema
        return clone


class _TenantApps(StateApps):
    """Historical models of one tenant: each tenant model on the tenant's table."""

    tenancy_schema: str

    def __init__(self, real_apps: Any, models: Any, schema: str) -> None:
        self.tenancy_schema = schema
        super().__init__(real_apps, models)

    @classmethod
    def of(cls, apps: StateApps, schema: str) -> _TenantApps:
        """Make ``apps`` (a registry of its own, such as a clone) render for ``schema``."""
        apps.__class__ = cls
        tenant_apps = cast(_TenantApps, apps)
        tenant_apps.tenancy_schema = schema
        return tenant_apps

    def render_multiple(self, model_states: Iterable[ModelState]) -> None:
        super().render_multiple(
            [cast(ModelState, _ForTenant(ms, self.tenancy_schema)) for ms in model_states]
        )

    def clone(self) -> StateApps:
        # StateApps.clone() builds a plain StateApps.
        return _TenantApps.of(super().clone(), self.tenancy_schema)


class _ForTenant:
    """A model state to render for one tenant (``render_multiple()`` only renders it).

    Whether it is a tenant model is decided when it is rendered, once its bases
    are: a model is one when a base is (the ``PerTenant`` mark, or a tenant
    model it inherits from).
    """

    __slots__ = ("model_state", "schema")

    def __init__(self, model_state: ModelState, schema: str) -> None:
        self.model_state, self.schema = model_state, schema

    def render(self, apps: StateApps) -> type[models.Model]:
        model_state = self.model_state
        if _is_tenant(model_state, apps):
            model_state = _on_tenant_tables(model_state, self.schema)
        return model_state.render(apps)

    def __repr__(self) -> str:
        return repr(self.model_state)


def _is_tenant(model_state: ModelState, apps: StateApps) -> bool:
    for base in model_state.bases:
        if isinstance(base, str):
            try:
                base = apps.get_model(base)
            except LookupError:
                return False  # not rendered yet: render() raises, and is retried later
        if is_tenant_model(base):
            return True
    return False


def _on_tenant_tables(model_state: ModelState, schema: str) -> ModelState:
    """Return a copy of a tenant model's state on the tenant's table, with its names.

    Auto-created many-to-many tables without a declared name need nothing: Django
    derives them from the model's (prefixed) table.
    """
    mark = schema + storage.PREFIX_SEPARATOR
    copy = model_state.clone()
    options = copy.options
    if not options.get("proxy"):
        table = options.get("db_table") or f"{copy.app_label}_{copy.name_lower}"
        options["db_table"] = mark + table
        for name, fld in list(copy.fields.items()):
            m2m_table = getattr(fld, "db_table", None) if fld.many_to_many else None
            if m2m_table and cast(models.ManyToManyRel, fld.remote_field).through is None:
                fld = fld.clone()  # type: ignore[attr-defined]  # stubs omit Field.clone()
                fld.db_table = mark + m2m_table
                copy.fields[name] = fld
    for key in ("indexes", "constraints"):
        if key in options:
            options[key] = [prefixed(obj, schema) for obj in options[key]]
    return copy

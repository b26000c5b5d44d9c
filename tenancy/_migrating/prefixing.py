"""Migrations on backends without schemas (SQLite): historical models renamed per tenant.

On PostgreSQL a tenant's migrations run with its schema on the
``search_path``, so the historical models keep their plain table names. SQLite
has no schemas: before each operation, the tenant models of the migration
state are pointed at the tenant's prefixed tables (and their explicit index
and constraint names prefixed too, since SQLite has one namespace of index
names per database).
"""

from __future__ import annotations

from typing import cast

from django.db import connections, models
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from tenancy._migrating.plan import tenant_models_in
from tenancy._primitives import storage
from tenancy._primitives.ddl import prefixed, tenant_schema_editor


def apply(migration: Migration, state: ProjectState, schema: str, using: str) -> ProjectState:
    """Apply a migration operation by operation, renaming tenant tables after each."""
    connection = connections[using]
    prefix_state(state, schema)
    with tenant_schema_editor(connection, atomic=False, prefix=schema) as editor:
        for operation in migration.operations:
            old_state = state.clone()
            operation.state_forwards(migration.app_label, state)
            prefix_state(state, schema)
            operation.database_forwards(migration.app_label, editor, old_state, state)
    return state


def prefix_state(state: ProjectState, schema: str) -> None:
    """Point the state's tenant models at the tenant's prefixed tables (idempotent)."""
    mark = schema + storage.PREFIX_SEPARATOR
    for model_state in tenant_models_in(state):
        changed = False
        options = model_state.options
        if not options.get("proxy"):
            table = options.get("db_table") or f"{model_state.app_label}_{model_state.name_lower}"
            if not table.startswith(mark):
                options["db_table"] = mark + table
                changed = True
            for name, fld in list(model_state.fields.items()):
                if (
                    not fld.many_to_many
                    or cast(models.ManyToManyRel, fld.remote_field).through is not None
                ):
                    continue
                if fld.db_table and fld.db_table.startswith(mark):  # type: ignore[attr-defined]  # stubs omit a many-to-many's db_table
                    continue
                fld = fld.clone()  # type: ignore[attr-defined]  # stubs omit Field.clone()
                fld.db_table = mark + (fld.db_table or f"{table}_{name}")
                model_state.fields[name] = fld
                changed = True
        for key in ("indexes", "constraints"):
            named = [prefixed(obj, schema) for obj in options.get(key, ())]
            if any(a is not b for a, b in zip(named, options.get(key, ()), strict=True)):
                options[key] = named
                changed = True
        if changed and "apps" in state.__dict__:
            state.reload_model(model_state.app_label, model_state.name_lower, delay=True)

"""Schema editors for tenant tables: Django's, plus database-level ``ON DELETE``.

Tenant classes are not in Django's global registry, so deleting a shared row
(a ``User``) cannot reach the tenant rows that point at it through Django's
deletion collector. The foreign keys of tenant tables therefore carry the
matching ``ON DELETE`` action in the database (``CASCADE`` and ``SET_NULL``;
``PROTECT``, ``RESTRICT`` and ``DO_NOTHING`` keep the default check), which
works for every tenant at once, cached in this process or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from tenancy._primitives import shared
from tenancy._primitives.markers import is_tenant_model

ON_DELETE_SQL: dict[Any, str] = {
    models.CASCADE: " ON DELETE CASCADE",
    models.SET_NULL: " ON DELETE SET NULL",
}

_editor_classes: dict[type, type] = {}


def on_delete_clause(field: models.Field) -> str:
    """Return the SQL ``ON DELETE`` clause mirroring a relation's ``on_delete``."""
    return ON_DELETE_SQL.get(getattr(field.remote_field, "on_delete", None), "")


def _with_clause(template: str | None, clause: str) -> str | None:
    if not template or not clause:
        return template
    if "DEFERRABLE" in template:
        return template.replace(" DEFERRABLE", clause + " DEFERRABLE", 1)
    return template.replace("%(deferrable)s", clause + "%(deferrable)s", 1)


class OnDeleteMixin:
    """Add ``ON DELETE`` to the foreign keys a schema editor creates."""

    _tenancy_field: models.Field | None = None
    #: On prefix backends, the tenant's prefix for index and constraint names
    #: (SQLite has one namespace of index names per database).
    tenancy_prefix: str | None = None
    #: When a list, every statement executed is appended to it (compiled migrations).
    tenancy_recording: list[tuple[str, Any]] | None = None
    #: False on a tenant database that is not the shared one: shared tables are not
    #: there, so foreign keys to them cannot be database constraints.
    tenancy_shared_fks: bool = True

    def create_model(self, model: Any) -> None:
        with self._shared_constraints_off(*model._meta.local_fields):
            super().create_model(model)  # type: ignore[misc]

    def add_field(self, model: Any, field: Any) -> None:
        with self._shared_constraints_off(field):
            super().add_field(model, field)  # type: ignore[misc]

    def alter_field(self, model: Any, old_field: Any, new_field: Any, strict: bool = False) -> None:
        with self._shared_constraints_off(old_field, new_field):
            super().alter_field(model, old_field, new_field, strict)  # type: ignore[misc]

    @contextmanager
    def _shared_constraints_off(self, *fields: Any) -> Iterator[None]:
        changed = []
        if not self.tenancy_shared_fks:
            for field in fields:
                remote = getattr(field, "remote_field", None)
                if remote is None or not getattr(field, "db_constraint", False):
                    continue
                target = remote.model
                if isinstance(target, type) and not is_tenant_model(target):
                    field.db_constraint = False
                    changed.append(field)
        try:
            yield
        finally:
            for field in changed:
                field.db_constraint = True

    def execute(self, sql: Any, params: Any = ()) -> None:
        super().execute(sql, params)  # type: ignore[misc]
        if self.tenancy_recording is not None:
            self.tenancy_recording.append((str(sql), params))

    def column_sql(self, model: Any, field: models.Field, include_default: bool = False) -> Any:
        self._tenancy_field = field
        return super().column_sql(model, field, include_default)  # type: ignore[misc]

    @property
    def sql_create_inline_fk(self) -> str | None:  # SQLite: inline REFERENCES
        base = super().sql_create_inline_fk  # type: ignore[misc]
        return _with_clause(base, self._clause())

    @property
    def sql_create_column_inline_fk(self) -> str | None:  # AddField on PostgreSQL/SQLite
        base = super().sql_create_column_inline_fk  # type: ignore[misc]
        return _with_clause(base, self._clause())

    def _create_fk_sql(self, model: Any, field: models.Field, suffix: str) -> Any:
        statement = super()._create_fk_sql(model, field, suffix)  # type: ignore[misc]
        statement.template = _with_clause(statement.template, on_delete_clause(field))
        return statement

    def _clause(self) -> str:
        field = self._tenancy_field
        return on_delete_clause(field) if field is not None and field.is_relation else ""

    def add_index(self, model: Any, index: Any, *args: Any, **kwargs: Any) -> Any:
        return super().add_index(model, self._named(index), *args, **kwargs)  # type: ignore[misc]

    def remove_index(self, model: Any, index: Any, *args: Any, **kwargs: Any) -> Any:
        return super().remove_index(model, self._named(index), *args, **kwargs)  # type: ignore[misc]

    def add_constraint(self, model: Any, constraint: Any) -> Any:
        return super().add_constraint(model, self._named(constraint))  # type: ignore[misc]

    def remove_constraint(self, model: Any, constraint: Any) -> Any:
        return super().remove_constraint(model, self._named(constraint))  # type: ignore[misc]

    def rename_index(self, model: Any, old_index: Any, new_index: Any) -> Any:
        return super().rename_index(  # type: ignore[misc]
            model, self._named(old_index), self._named(new_index)
        )

    def _named(self, obj: Any) -> Any:
        return prefixed(obj, self.tenancy_prefix) if self.tenancy_prefix else obj


def prefixed(obj: Any, prefix: str) -> Any:
    """Return an index or constraint named for the tenant ``prefix`` (idempotent)."""
    if not obj.name or obj.name.startswith(prefix + "_") or "%(" in obj.name:
        return obj
    obj = obj.clone()
    obj.name = f"{prefix}_{obj.name}"
    return obj


@contextmanager
def ddl_transaction(using: str) -> Iterator[None]:
    """Open one transaction that schema editors can work in, on any backend.

    SQLite's schema editor needs foreign key checks off, which SQLite only
    allows outside a transaction: they are turned off before it opens.
    """
    connection = connections[using]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    connection.disable_constraint_checking()
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        connection.enable_constraint_checking()


def tenant_schema_editor(
    connection: BaseDatabaseWrapper,
    *,
    atomic: bool = True,
    collect_sql: bool = False,
    prefix: str | None = None,
) -> BaseDatabaseSchemaEditor:
    """Return a schema editor for tenant tables on ``connection``."""
    base = connection.SchemaEditorClass
    editor_class = _editor_classes.get(base)
    if editor_class is None:
        editor_class = type(f"Tenant{base.__name__}", (OnDeleteMixin, base), {})
        _editor_classes[base] = editor_class
    editor = editor_class(connection, atomic=atomic, collect_sql=collect_sql)
    editor.tenancy_prefix = prefix
    editor.tenancy_shared_fks = connection.alias == shared.database()
    return editor

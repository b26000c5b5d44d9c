"""Schema editors for tenant tables: Django's, plus database-level ``ON DELETE``.

Tenant classes are not in Django's global registry, so deleting a shared row
(a ``User``) cannot reach the tenant rows that point at it through Django's
deletion collector. The foreign keys of tenant tables therefore carry the
matching ``ON DELETE`` action in the database (``CASCADE`` and ``SET_NULL``;
``PROTECT``, ``RESTRICT`` and ``DO_NOTHING`` keep the default check), which
works for every tenant at once, cached in this process or not.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

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


def tenant_schema_editor(
    connection: BaseDatabaseWrapper, *, atomic: bool = True, collect_sql: bool = False
) -> BaseDatabaseSchemaEditor:
    """Return a schema editor for tenant tables on ``connection``."""
    base = connection.SchemaEditorClass
    editor_class = _editor_classes.get(base)
    if editor_class is None:
        editor_class = type(f"Tenant{base.__name__}", (OnDeleteMixin, base), {})
        _editor_classes[base] = editor_class
    return editor_class(connection, atomic=atomic, collect_sql=collect_sql)

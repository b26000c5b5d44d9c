"""Apply tenant migrations inside one tenant's storage, and build a new tenant's tables.

Like Django's ``MigrationExecutor``, for one tenant at a time: the plan comes
from :mod:`~tenancy._migrating.plan`, the bookkeeping from
:mod:`~tenancy._migrating.recorder`. On PostgreSQL the operations run in the
tenant's schema through a transaction-local ``search_path`` (``SET LOCAL``:
it ends with the transaction, so connection poolers in transaction mode stay
safe), the historical models keep their plain table names, and ``RunPython``
code queries the tenant's tables; the SQL is recorded and replayed on the next
tenants (:mod:`~tenancy._migrating.replay`). On other backends the historical
models are renamed to the tenant's prefixed tables
(:mod:`~tenancy._migrating.prefixing`).

A new tenant is built from the current migration state, not by replaying the
history, and recorded as fully migrated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.state import ProjectState

from tenancy._classes import factory
from tenancy._classes.registry import TEMPLATES
from tenancy._classes.routers import tenant_migrations
from tenancy._migrating import prefixing, recorder, replay
from tenancy._migrating.plan import Key, Plan, migrated_apps, plan, tenant_models_in
from tenancy._primitives import storage
from tenancy._primitives.ddl import ddl_transaction, tenant_schema_editor
from tenancy.exceptions import TenantMigrationError


def migrate_schema(
    schema: str,
    using: str,
    *,
    on_applied: Callable[[Key], None] | None = None,
) -> list[Key]:
    """Apply the tenant's missing migrations in one transaction; return them.

    Raises :class:`TenantMigrationError` naming the migration that failed;
    the tenant is then left exactly as it was.
    """
    todo = recorder.pending(schema, using)
    if not todo:
        return []
    the_plan = plan()
    connection = connections[using]
    schemas = storage.uses_schemas(connection)
    compilable = schemas and the_plan.compilable(todo)
    key = (using, tuple(todo))
    compiled = the_plan.compiled.get(key) if compilable else None
    with tenant_migrations(using), ddl_transaction(using):
        if schemas:
            _enter_schema(connection, schema)
        if compiled is not None:
            try:
                with transaction.atomic(using=using):
                    replay.replay_migrations(connection, schema, compiled)
                    recorder.record(connection, schema, todo)
            except TenantMigrationError:
                # This schema may differ from the one the SQL was recorded on (a
                # hand-made change): apply the migrations themselves instead.
                _apply(the_plan, todo, schema, using, None)
        else:
            recording: list[Any] | None = [] if compilable else None
            _apply(the_plan, todo, schema, using, recording)
            if recording is not None:
                the_plan.compiled[key] = replay.compile_recording(connection, recording)
    if on_applied is not None:
        for applied_key in todo:
            on_applied(applied_key)
    return todo


def _apply(
    the_plan: Plan, todo: list[Key], schema: str, using: str, recording: list[Any] | None
) -> None:
    """Run the migrations' operations against the tenant, recording the SQL if asked."""
    connection = connections[using]
    wanted = set(todo)
    start = the_plan.full.index(todo[0])
    state = the_plan.state_before(todo[0])
    for key in the_plan.full[start:]:
        migration = the_plan.migration(key)
        if key not in wanted:
            state = migration.mutate_state(state, preserve=False)
            continue
        try:
            if storage.uses_schemas(connection):
                statements: list[tuple[str, Any]] = []
                with tenant_schema_editor(connection, atomic=False) as editor:
                    editor.tenancy_recording = statements  # type: ignore[attr-defined]
                    state = migration.apply(state, editor)
                if recording is not None:
                    recording.append((key, statements))
            else:
                state = prefixing.apply(migration, state, schema, using)
            recorder.record(connection, schema, [key])
        except Exception as exc:
            raise TenantMigrationError(schema, key, exc) from exc


def _unapply_migration(schema: str, using: str, key: Key) -> None:
    """Un-apply the tenant's last applied migration ``key``, in one transaction.

    The library only migrates forwards (see docs/migrations.md, "Limits"); this
    is the backwards twin of :func:`migrate_schema`, for the tests of migration
    operations: only tenant operations run, inside the tenant's storage (its
    schema first on a transaction-local ``search_path`` on PostgreSQL, the
    historical models on its prefixed tables on other backends), through
    Django's ``Migration.unapply`` (each operation's ``database_backwards``,
    last operation first), and the record of ``key`` is deleted in the same
    transaction. Raises :class:`TenantMigrationError` (an irreversible
    operation included); the tenant is then left exactly as it was.
    """
    the_plan = plan()
    done = recorder.applied(schema, using)
    later = the_plan.keys[the_plan.keys.index(key) + 1 :]
    if key not in done or any(k in done for k in later):
        raise ValueError(f"{key[0]}.{key[1]} is not the last migration applied in {schema}")
    connection = connections[using]
    schemas = storage.uses_schemas(connection)
    migration = the_plan.migration(key)
    with tenant_migrations(using), ddl_transaction(using):
        if schemas:
            _enter_schema(connection, schema)
        try:
            state = the_plan.state_before(key)
            if schemas:
                with tenant_schema_editor(connection, atomic=False) as editor:
                    migration.unapply(state, editor)
            else:
                prefixing.unapply(migration, state, schema, using)
            table = storage.table_name(schema, recorder.RECORD_TABLE, using)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {connection.ops.quote_name(table)} WHERE app = %s AND name = %s",
                    list(key),
                )
        except Exception as exc:
            raise TenantMigrationError(schema, key, exc) from exc


def build_tables(schema: str, using: str) -> None:
    """Create every tenant table and record the plan as applied, in the current transaction.

    Tables of apps with migrations come from the current migration state,
    the others from the templates themselves. On PostgreSQL the schema must
    exist; the caller creates it (see ``tenancy._primitives.provisioning``).
    """
    connection = connections[using]
    the_plan = plan()
    schemas = storage.uses_schemas(connection)
    migrated = migrated_apps()
    with tenant_migrations(using):
        if migrated:
            if schemas:
                _enter_schema(connection, schema)
                _build_compiled(the_plan, connection, using)
            else:
                state = prefixing.tenant_state(the_plan.state_before(None), schema)
                with tenant_schema_editor(connection, atomic=False, prefix=schema) as editor:
                    for model in _tables(state):
                        editor.create_model(model)
        recorder.record(connection, schema, the_plan.keys if migrated else [])
    if any(t._meta.app_label not in migrated for t in TEMPLATES.values()):
        _build_unmigrated(schema, using, migrated)


def _build_unmigrated(schema: str, using: str, migrated: set[str]) -> None:
    """Create the tables of templates whose apps have no migrations, from the classes."""
    connection = connections[using]
    bundle = factory.build(schema, using)
    try:
        prefix = None if storage.uses_schemas(connection) else schema
        with tenant_schema_editor(connection, atomic=False, prefix=prefix) as editor:
            for model in bundle.tables():
                if model._meta.app_label not in migrated:
                    editor.create_model(model)
    finally:
        bundle.release()


def _build_compiled(the_plan: Plan, connection: BaseDatabaseWrapper, using: str) -> None:
    """Create the tables in the current schema (``search_path``), replaying the DDL
    recorded for the first schema built on ``using`` by this process."""
    statements = the_plan.compiled_builds.get(using)
    if statements is not None:
        replay.run(connection, statements)
        return
    recording: list[tuple[str, Any]] = []
    state = the_plan.state_before(None, copy=False)
    with tenant_schema_editor(connection, atomic=False) as editor:
        editor.tenancy_recording = recording  # type: ignore[attr-defined]
        for model in _tables(state):
            editor.create_model(model)
    the_plan.compiled_builds[using] = replay.batched(connection, recording)


def _tables(state: ProjectState) -> Iterable[type[models.Model]]:
    labels = {(m.app_label, m.name_lower) for m in tenant_models_in(state)}
    for model in state.apps.get_models():
        opts = model._meta
        if (opts.app_label, opts.model_name) in labels and not opts.proxy and opts.managed:
            yield model


def _enter_schema(connection: BaseDatabaseWrapper, schema: str) -> None:
    """Resolve unqualified names in the tenant's schema until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('search_path', %s || ', ' || current_setting('search_path'), true)",
            [connection.ops.quote_name(schema)],
        )

"""Apply migrations of tenant models inside one tenant's storage.

The plan is the ordered list of migrations of the apps that have tenant
models, read from disk once per process (no database involved). Each tenant
records what it has applied in its own ``tenancy_migrations`` table, written
in the transaction that applies the migration; the tenant row keeps a digest
of the applied plan, so finding the tenants that are already current is one
query for the whole fleet, with no migration graph loaded per tenant.

On PostgreSQL the operations run in the tenant's schema through a
transaction-local ``search_path`` (``SET LOCAL``: it ends with the
transaction, so connection poolers in transaction mode stay safe); the
historical models keep their plain table names, and ``RunPython`` code
queries the tenant's tables. On other backends, the historical models of
tenant tables are renamed to the tenant's prefixed tables instead.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations import RunPython
from django.db.migrations.state import ModelState, ProjectState

from tenancy import storage
from tenancy.ddl import ddl_transaction, prefixed, tenant_schema_editor
from tenancy.exceptions import TenancyError
from tenancy.registry import TEMPLATES
from tenancy.routers import tenant_migrations
from tenancy.state import PerTenant

#: The per-tenant record of applied migrations (one per schema / prefix).
RECORD_TABLE = "tenancy_migrations"

Key = tuple[str, str]


class TenantMigrationError(TenancyError, RuntimeError):
    """A migration failed inside one tenant; nothing of it was applied there."""

    def __init__(self, schema: str, key: Key, error: BaseException) -> None:
        self.schema, self.key, self.error = schema, key, error
        super().__init__(f"{key[0]}.{key[1]} failed for {schema}: {type(error).__name__}: {error}")


@dataclass
class Plan:
    """The migrations that make up the tenant models' history, in order."""

    loader: MigrationLoader
    #: Every migration of the project in dependency order.
    full: list[Key]
    #: The migrations of the apps with tenant models, in dependency order.
    keys: list[Key]
    _states: dict[Key | None, ProjectState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: SQL recorded while migrating one tenant, replayed on the others (PostgreSQL):
    #: keyed by the tuple of migrations applied, one list of statements per migration.
    compiled: dict[tuple[Key, ...], list[tuple[Key, list[tuple[str, Any]]]]] = field(
        default_factory=dict
    )
    #: The DDL that builds a tenant at the current state, per database alias.
    compiled_builds: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    def compilable(self, todo: list[Key]) -> bool:
        """Return whether these migrations are plain SQL, the same for every tenant.

        ``RunPython`` runs Python per tenant and non-atomic migrations manage
        their own transactions: those are applied operation by operation.
        """
        for key in todo:
            migration = self.migration(key)
            if not migration.atomic:
                return False
            if any(_runs_python(op) for op in migration.operations):
                return False
        return True

    @cached_property
    def digest(self) -> str:
        """A fingerprint of the plan; a tenant that recorded it is current."""
        text = "\n".join(f"{app}.{name}" for app, name in sorted(self.keys))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def migration(self, key: Key) -> Migration:
        return self.loader.graph.nodes[key]

    def state_before(self, key: Key | None, *, copy: bool = True) -> ProjectState:
        """Return the project state before ``key`` (None: the end).

        A fresh copy unless ``copy`` is false: then the shared, rendered state,
        which the caller must not change.
        """
        with self._lock:
            state = self._states.get(key)
            if state is None:
                if key is None:
                    state = self.loader.project_state()
                else:
                    state = self.loader.project_state(key, at_end=False)
                state.apps  # noqa: B018 - render once, clone per tenant
                self._states[key] = state
        return state.clone() if copy else state


_plan: Plan | None = None
_plan_lock = threading.Lock()


def plan() -> Plan:
    """Return the migration plan of the tenant apps (read from disk once per process)."""
    global _plan
    with _plan_lock:
        if _plan is None:
            _plan = _load_plan()
        return _plan


def forget_plan() -> None:
    """Read the migrations from disk again on next use (after makemigrations)."""
    global _plan
    with _plan_lock:
        _plan = None


def _load_plan() -> Plan:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    graph = loader.graph
    full: list[Key] = []
    seen: set[Key] = set()
    for leaf in sorted(graph.leaf_nodes()):
        for key in graph.forwards_plan(leaf):
            if key not in seen:
                seen.add(key)
                full.append(key)
    apps = {t._meta.app_label for t in TEMPLATES.values()}
    return Plan(loader, full, [key for key in full if key[0] in apps])


def _runs_python(operation: Any) -> bool:
    if isinstance(operation, RunPython):
        return True
    inner = getattr(operation, "database_operations", None)
    return bool(inner) and any(_runs_python(op) for op in inner)


def tenant_models_in(state: ProjectState) -> list[ModelState]:
    """Return the tenant models of a migration state."""
    tenant_labels: set[tuple[str, str]] = set()
    found = True
    while found:  # children of tenant models are tenant models
        found = False
        for key, model_state in state.models.items():
            if key in tenant_labels:
                continue
            for base in model_state.bases:
                is_tenant = (
                    base is PerTenant
                    if isinstance(base, type)
                    else (tuple(base.lower().split(".", 1)) in tenant_labels)
                )
                if is_tenant:
                    tenant_labels.add(key)
                    found = True
                    break
    return [state.models[key] for key in tenant_labels]


def migrated_apps() -> set[str]:
    """Return the labels of the apps whose tenant models come from migrations."""
    return {key[0] for key in plan().keys} & set(plan().loader.migrated_apps)


def applied(schema: str, using: str) -> set[Key]:
    """Return the migrations recorded as applied in the tenant's storage."""
    table = storage.table_name(schema, RECORD_TABLE, using)
    connection = connections[using]
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            # An index look-up; pg_tables would scan the catalog of every tenant.
            cursor.execute("SELECT to_regclass(%s)", [table])
            if cursor.fetchone()[0] is None:
                return set()
        elif table not in storage.existing_tenant_tables(schema, using):
            return set()
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(table)}")
        return {(app, name) for app, name in cursor.fetchall()}


def pending(schema: str, using: str) -> list[Key]:
    """Return the migrations the tenant has not applied yet, in order."""
    done = applied(schema, using)
    return [key for key in plan().keys if key not in done]


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
    todo = pending(schema, using)
    if not todo:
        return []
    the_plan = plan()
    connection = connections[using]
    schemas = storage.uses_schemas(connection)
    compilable = schemas and the_plan.compilable(todo)
    compiled = the_plan.compiled.get(tuple(todo)) if compilable else None
    with tenant_migrations(using), ddl_transaction(using):
        if schemas:
            _enter_schema(connection, schema)
        if compiled is not None:
            try:
                with transaction.atomic(using=using):
                    _replay(connection, schema, todo, compiled)
            except TenantMigrationError:
                # This schema may differ from the one the SQL was recorded on (a
                # hand-made change): apply the migrations themselves instead.
                _apply(the_plan, todo, schema, using, None)
        else:
            recording: list[tuple[str, Any]] | None = [] if compilable else None
            _apply(the_plan, todo, schema, using, recording)
            if recording is not None:
                the_plan.compiled[tuple(todo)] = [
                    (key, batched(connection, statements)) for key, statements in recording
                ]
    if on_applied is not None:
        for key in todo:
            on_applied(key)
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
                    editor.tenancy_recording = statements
                    state = migration.apply(state, editor)
                if recording is not None:
                    recording.append((key, statements))
            else:
                state = _apply_prefixed(migration, state, schema, using)
            _record(connection, schema, using, [key])
        except Exception as exc:
            raise TenantMigrationError(schema, key, exc) from exc


def _replay(
    connection: BaseDatabaseWrapper, schema: str, todo: list[Key], compiled: list[Any]
) -> None:
    """Run SQL recorded while migrating another tenant from the same state."""
    with connection.cursor() as cursor:
        for key, statements in compiled:
            try:
                for sql, params in statements:
                    cursor.execute(sql, params or None)
            except Exception as exc:
                raise TenantMigrationError(schema, key, exc) from exc
    _record(connection, schema, connection.alias, todo)


def build_schema(schema: str, using: str) -> None:
    """Create every tenant table from the current migration state and record the
    plan as applied, in the current transaction (see ``ddl.ddl_transaction``).

    On PostgreSQL the schema must exist; the caller creates it.
    """
    connection = connections[using]
    the_plan = plan()
    prefix = _prefix(schema, using)
    with tenant_migrations(using):
        if prefix is None:
            _enter_schema(connection, schema)
            _build_compiled(the_plan, connection, using)
        else:
            state = the_plan.state_before(None)
            _prefix_state(state, schema)
            with tenant_schema_editor(connection, atomic=False, prefix=prefix) as editor:
                for model in _tables(state):
                    editor.create_model(model)
        _record(connection, schema, using, the_plan.keys)


def _build_compiled(the_plan: Plan, connection: BaseDatabaseWrapper, using: str) -> None:
    """Create the tables in the current schema (``search_path``), replaying the DDL
    recorded for the first schema built on ``using`` by this process."""
    statements = the_plan.compiled_builds.get(using)
    if statements is not None:
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params or None)
        return
    recording: list[tuple[str, Any]] = []
    state = the_plan.state_before(None, copy=False)
    with tenant_schema_editor(connection, atomic=False) as editor:
        editor.tenancy_recording = recording
        for model in _tables(state):
            editor.create_model(model)
    the_plan.compiled_builds[using] = batched(connection, recording)


def batched(
    connection: BaseDatabaseWrapper, statements: list[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """Return recorded statements as one statement to replay in one round trip.

    A schema's 83 statements sent one by one cost 83 round trips to the
    server; PostgreSQL runs a batch of them, separated by semicolons, from a
    single query message, in order, inside the caller's transaction. Each
    statement's parameters are merged into its text first, as Django's
    PostgreSQL schema editor does before executing it.
    """
    if connection.vendor != "postgresql" or len(statements) < 2:
        return statements
    texts = [
        sql if params is None else connection.ops.compose_sql(sql, params)
        for sql, params in statements
    ]
    return [(";\n".join(texts), None)]


def create_record_table(connection: BaseDatabaseWrapper, schema: str, using: str) -> None:
    """Create the tenant's record of applied migrations (empty)."""
    _record(connection, schema, using, [])


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


def _record(connection: BaseDatabaseWrapper, schema: str, using: str, keys: list[Key]) -> None:
    table = connection.ops.quote_name(storage.table_name(schema, RECORD_TABLE, using))
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (app varchar(255) NOT NULL, "
            "name varchar(255) NOT NULL, PRIMARY KEY (app, name))"
        )
        if keys:
            cursor.executemany(
                f"INSERT INTO {table} (app, name) VALUES (%s, %s)", [list(k) for k in keys]
            )


# -- prefix backends (SQLite): historical models renamed to the tenant's tables --


def _prefix(schema: str, using: str) -> str | None:
    return None if storage.uses_schemas_alias(using) else schema


def _apply_prefixed(
    migration: Migration, state: ProjectState, schema: str, using: str
) -> ProjectState:
    """Apply a migration operation by operation, renaming tenant tables after each."""
    connection = connections[using]
    _prefix_state(state, schema)
    with tenant_schema_editor(connection, atomic=False, prefix=schema) as editor:
        for operation in migration.operations:
            old_state = state.clone()
            operation.state_forwards(migration.app_label, state)
            _prefix_state(state, schema)
            operation.database_forwards(migration.app_label, editor, old_state, state)
    return state


def _prefix_state(state: ProjectState, schema: str) -> None:
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
                if not fld.many_to_many or fld.remote_field.through is not None:
                    continue
                if fld.db_table and fld.db_table.startswith(mark):
                    continue
                fld = fld.clone()
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

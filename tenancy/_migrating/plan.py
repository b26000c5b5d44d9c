"""The tenant migration plan: which migrations make up the tenant models' history.

Read from disk once per process (Django's ``MigrationLoader``, no database
involved), like Django's own loader. The plan's digest is what a tenant row
records when it is current, so "which tenants are behind" is one query for the
whole fleet, and what a rollout sends to its workers so that a worker running
another version of the code can say so.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations import RunPython
from django.db.migrations.state import ModelState, ProjectState

from tenancy._classes.registry import TEMPLATES
from tenancy.state import PerTenant

Key = tuple[str, str]
#: What recorded SQL is keyed by: the database alias and the migrations it applies
#: (the SQL differs per alias: no foreign keys to shared tables off the shared database).
CompiledKey = tuple[str, tuple[Key, ...]]
Statements = list[tuple[str, Any]]


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
    #: SQL recorded while migrating one tenant, replayed on the others (PostgreSQL),
    #: one list of statements per migration.
    compiled: dict[CompiledKey, list[tuple[Key, Statements]]] = field(default_factory=dict)
    #: The DDL that builds a tenant at the current state, per database alias.
    compiled_builds: dict[str, Statements] = field(default_factory=dict)

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

        That is the state of every migration before ``key`` in :attr:`full`, not
        only of ``key``'s own dependencies (Django's ``project_state(key,
        at_end=False)``): a tenant app's first migration may declare none, and
        the pending migrations after it need the models of everything the plan
        applied before them (the shared users, say).

        A fresh copy unless ``copy`` is false: then the shared, rendered state,
        which the caller must not change.
        """
        with self._lock:
            state = self._states.get(key)
            if state is None:
                if key is None:
                    state = self.loader.project_state()
                else:
                    state = ProjectState(real_apps=self.loader.unmigrated_apps)
                    for earlier in self.full[: self.full.index(key)]:
                        state = self.migration(earlier).mutate_state(state, preserve=False)
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
    return bool(inner and any(_runs_python(op) for op in inner))


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

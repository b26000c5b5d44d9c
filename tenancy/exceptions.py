"""Exceptions of the library, all rooted at :class:`TenancyError`.

Each one also inherits the built-in it resembles, so generic handlers keep
working, and carries the tenant or schema it is about.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import SynchronousOnlyOperation, ValidationError

__all__ = [
    "CrossTenantRelation",
    "ForeignObject",
    "InvalidTenantKey",
    "LockLost",
    "MoveError",
    "PlacementError",
    "StorageMissing",
    "TemplateModelUsed",
    "TenancyError",
    "TenantCacheNotClearable",
    "TenantDeleted",
    "TenantMigrationError",
    "TenantModelDefinitionError",
    "TenantNotCached",
    "TenantNotReady",
]


class TenancyError(Exception):
    """Base class of every error raised by django-tenancy."""


class TenantNotReady(TenancyError, LookupError):
    """The tenant's schema is not provisioned yet (or provisioning failed)."""

    def __init__(self, tenant: Any, state: str, detail: str = "") -> None:
        self.tenant = tenant
        self.state = state
        hint = (
            "call tenant.wait_until_ready() first, or check that a Celery worker is "
            "running (`celery -A yourproject worker`) and see `manage.py tenancy_status`"
        )
        if state == "failed":
            hint = "its last error is kept on the tenant; fix it and retry provisioning"
        message = f"Tenant {tenant!r} is not ready (state {state!r}): {hint}."
        if detail:
            message += f" Last error: {detail}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery pickles a task's error (for its log line, its result): rebuilt as itself,
        # not as the first base class whose constructor takes the message alone.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Recreate a pickled error without calling its constructor."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class TenantCacheNotClearable(TenancyError, NotImplementedError):
    """A tenant's cache cannot be cleared: its backend cannot find keys by prefix.

    ``clear()`` of the backend itself would wipe every tenant's entries, so it is
    never called instead.
    """

    def __init__(self, alias: str, reason: str) -> None:
        self.alias = alias
        super().__init__(
            f"The cache {alias!r} cannot clear one tenant's keys ({reason}). Delete the "
            "keys you set with delete() or delete_many(), let them expire (TIMEOUT), or "
            "keep tenant caches on Redis (django.core.cache.backends.redis.RedisCache or "
            "django-redis) or the local-memory cache."
        )


class TenantDeleted(TenancyError, LookupError):
    """The tenant instance is of a tenant that was deleted: it is stale.

    Raised by ``for_tenant()`` instead of serving the classes of a tenant that
    no longer exists; a tenant signed up again under the same key is a new
    tenant, with new tables, that an old instance never reaches.
    """

    def __init__(self, tenant: Any, detail: str = "") -> None:
        self.tenant = tenant
        message = (
            f"Tenant {tenant!r} was deleted: this instance is stale. Fetch the tenant "
            "again (a tenant signed up again under the same key is a new tenant)."
        )
        super().__init__(f"{message} {detail}".strip())


class TenantNotCached(TenancyError, SynchronousOnlyOperation):
    """``for_tenant()`` was called from async code on a tenant whose classes this process
    has not cached: loading them reads the database, which async code must not do
    synchronously. ``await Template.afor_tenant(tenant)`` loads them.

    A ``SynchronousOnlyOperation``, so handlers of Django's error keep matching.
    """

    def __init__(self, tenant: Any, template: Any = None) -> None:
        self.tenant = tenant
        name = getattr(template, "__name__", "Template")
        super().__init__(
            f"The classes of tenant {tenant!r} are not cached in this process, and loading "
            "them reads the database, which cannot be done from async code: use "
            f"`await {name}.afor_tenant(tenant)` (it loads and caches them; later "
            "for_tenant() calls are cache hits)."
        )


class ForeignObject(TenancyError, RuntimeError):
    """A schema or role that the library did not build stands where it would build one.

    The library never adopts, alters or drops such an object; the tenant that
    needed the name is marked failed with this error.
    """

    def __init__(self, kind: str, name: str, database: str, owner: str | None = None) -> None:
        self.kind, self.name, self.database, self.owner = kind, name, database, owner
        whose = (
            "it carries no django-tenancy ownership mark"
            if owner is None
            else f"it belongs to another django-tenancy owner ({owner})"
        )
        super().__init__(
            f"The {kind} {name!r} on database {database!r} already exists and was not built "
            f"for this tenant ({whose}); it is left untouched. Rename or drop it yourself "
            "if it is not needed, then retry the tenant (the admin's retry action, or "
            "`manage.py tenancy_reconcile --retry-failed`); or delete the tenant and sign "
            "it up again, which picks another name."
        )


class CrossTenantRelation(TenancyError, ValueError):
    """A row of one tenant was given to a relation of another tenant's row.

    Tenants' rows never point at each other's: each lives in its own schema.
    """

    def __init__(self, value: Any, instance: Any, field: str) -> None:
        self.value, self.instance, self.field = value, instance, field
        theirs, ours = _tenant_of(value), _tenant_of(instance)
        super().__init__(
            f'Cannot assign "{value!r}" to {type(instance).__name__}.{field}: it is a row of '
            f"tenant {theirs}, and this {type(instance).__name__} belongs to tenant {ours}. "
            "Rows of one tenant never point at another's: use a row of the same tenant "
            "(Model.for_tenant(tenant))."
        )


def _tenant_of(row: Any) -> str:
    return str(type(row).__dict__.get("_tenancy_schema") or "?")


class LockLost(TenancyError, ConnectionError):
    """A lock held for some work died (its database connection was lost); the work
    was not committed and is retried."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"The lock {name!r} was lost with its database connection.")


class PlacementError(TenancyError, ValueError):
    """A tenant was placed on a database that cannot hold tenants."""


class MoveError(TenancyError, RuntimeError):
    """A tenant could not be moved to another database; it stays where it was, writable."""


class TenantMigrationError(TenancyError, RuntimeError):
    """A migration failed inside one tenant; nothing of it was applied there."""

    def __init__(self, schema: str, key: tuple[str, str], error: BaseException) -> None:
        self.schema, self.key, self.error = schema, key, error
        super().__init__(f"{key[0]}.{key[1]} failed for {schema}: {type(error).__name__}: {error}")


class StorageMissing(TenancyError, LookupError):
    """A built tenant's schema is not there (a restore, a manual drop).

    Never rebuilt silently, since its data would be gone: the tenant is marked
    failed with this error.
    """

    def __init__(self, schema: str, database: str) -> None:
        self.schema, self.database = schema, database
        super().__init__(
            f"The schema {schema!r} of this tenant is missing on database {database!r}; "
            "nothing was migrated. See `manage.py tenancy_reconcile --check`: `--repair` "
            "builds it again, empty (restore its data from a backup)."
        )


class InvalidTenantKey(TenancyError, ValidationError):
    """A tenant's natural key cannot name a schema (empty, reserved, unusable)."""

    def __init__(self, key: Any, reason: str) -> None:
        self.key = key
        self.reason = reason
        ValidationError.__init__(
            self,
            f"Invalid tenant key {key!r}: {reason}.",
            code="invalid_tenant_key",
        )


class TemplateModelUsed(TenancyError, AttributeError):
    """A tenant model template was used as if it had a table of its own."""

    def __init__(self, template: type, what: str) -> None:
        self.template = template
        name = template.__name__
        super().__init__(
            f"{template._meta.label} is a tenant model template and has no table, so "  # type: ignore[attr-defined]
            f"{name}.{what} is not available: use {name}.for_tenant(tenant).{what} instead."
        )


class TenantModelDefinitionError(TenancyError, TypeError):
    """A tenant model declares something that cannot work per tenant."""

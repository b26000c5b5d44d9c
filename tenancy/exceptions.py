"""Exceptions of the library, all rooted at :class:`TenancyError`.

Each one also inherits the built-in it resembles, so generic handlers keep
working, and carries the tenant or schema it is about.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


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

"""The tenant backends as configured: ``TENANCY_AUTHENTICATION_BACKENDS``, loaded in order.

One place reads the setting into backend instances, so that authenticating
(:mod:`tenancy.auth.sessions`) and asking for permissions
(:mod:`tenancy.auth.permissions`) walk the same list, with the same error
when it is empty. The backends are named by dotted paths and loaded by
Django's ``load_backend()``: no backend module is imported here.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import load_backend
from django.core.exceptions import ImproperlyConfigured

from tenancy._primitives import conf

__all__ = ["configured_backends"]


def configured_backends() -> list[tuple[Any, str]]:
    """Return the tenant backends of ``TENANCY_AUTHENTICATION_BACKENDS``, with their paths.

    Raises ``ImproperlyConfigured`` when the list is empty: tenant users could
    then neither log in nor have permissions, and saying so beats refusing
    every login silently.
    """
    paths = conf.authentication_backends()
    if not paths:
        raise ImproperlyConfigured(
            "TENANCY_AUTHENTICATION_BACKENDS is empty: list at least "
            "'tenancy.auth.TenantUserBackend'."
        )
    return [(load_backend(path), path) for path in paths]

"""A tenant user's permissions, asked of the tenant backends in order.

Django's ``PermissionsMixin`` and ``AnonymousUser`` ask
``AUTHENTICATION_BACKENDS``, the staff's backends; tenant users (and the
anonymous tenant user) must ask ``TENANCY_AUTHENTICATION_BACKENDS`` instead,
with the same rules: permissions are the union of what the backends give,
and a backend that raises ``PermissionDenied`` refuses at once.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from tenancy.auth.configured import configured_backends

__all__ = ["backend_permissions", "has_module_perms", "has_perm"]


def backend_permissions(user: Any, method: str, obj: Any) -> set[str]:
    """Return the union of ``backend.<method>(user, obj)`` over the tenant backends that
    have ``method`` (``"get_user_permissions"`` or ``"get_all_permissions"``)."""
    found: set[str] = set()
    for backend, _path in configured_backends():
        if hasattr(backend, method):
            found.update(getattr(backend, method)(user, obj))
    return found


def has_perm(user: Any, perm: str, obj: Any) -> bool:
    """Whether a tenant backend gives ``user`` the permission ``perm`` (on ``obj``)."""
    for backend, _path in configured_backends():
        if not hasattr(backend, "has_perm"):
            continue
        try:
            if backend.has_perm(user, perm, obj):
                return True
        except PermissionDenied:
            return False
    return False


def has_module_perms(user: Any, app_label: str) -> bool:
    """Whether a tenant backend gives ``user`` any permission of ``app_label``."""
    for backend, _path in configured_backends():
        if not hasattr(backend, "has_module_perms"):
            continue
        try:
            if backend.has_module_perms(user, app_label):
                return True
        except PermissionDenied:
            return False
    return False

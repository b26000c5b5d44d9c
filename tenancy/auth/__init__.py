"""Tenant-scoped users: users that are rows of one tenant, next to the shared staff users.

``AUTH_USER_MODEL`` stays a shared model (staff, the admin, ``request.user``).
A tenant's own users are rows of a template that the project declares on
:class:`AbstractTenantUser` and names in ``TENANCY_USER_MODEL``; each tenant
has its own table of them. Example::

    # myapp/models.py
    from tenancy.auth import AbstractTenantUser

    class Member(AbstractTenantUser):
        pass

    # settings.py
    TENANCY_USER_MODEL = "myapp.Member"
    MIDDLEWARE = [
        ...,
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "tenancy.middleware.TenantMiddleware",
        "tenancy.auth.TenantAuthenticationMiddleware",
    ]

:func:`authenticate` asks the backends of ``TENANCY_AUTHENTICATION_BACKENDS``
(default :class:`TenantUserBackend`), which look the credentials up among
``request.tenant``'s users only. :func:`login` keeps the user in the session
under keys of its own, bound to the tenant's incarnation, and
:class:`TenantAuthenticationMiddleware` restores it, lazily, as
``request.tenant_user``; ``request.user`` is left to Django. See
``docs/auth.md``.

Import every name from ``tenancy.auth``, and name the backend and the
middleware by ``"tenancy.auth.TenantUserBackend"`` and
``"tenancy.auth.TenantAuthenticationMiddleware"``: those paths are the
public ones, which sessions and migration files store. The modules of the
package are its layout, each with one job, and may move:

- ``configured``: the backends of ``TENANCY_AUTHENTICATION_BACKENDS``, loaded;
- ``permissions``: a tenant user's permissions, asked of those backends;
- ``models``: ``AbstractTenantUser``, ``TenantUserManager``,
  ``AnonymousTenantUser``, finding the template of ``TENANCY_USER_MODEL``;
- ``backends``: ``TenantUserBackend``;
- ``sessions``: ``authenticate()``, ``login()``, ``logout()``, ``get_user()``,
  ``update_session_auth_hash()`` and the session keys;
- ``middleware``: ``TenantAuthenticationMiddleware`` (``request.tenant_user``);
- ``access``: ``tenant_login_required`` and ``TenantLoginRequiredMixin``;
- ``forms``: ``TenantAuthenticationForm``;
- ``views``: ``TenantLoginView`` and ``TenantLogoutView``.

Each imports only modules listed above it (never this one), so there is no
cycle; this module only re-exports them.
"""

from __future__ import annotations

from tenancy.auth.access import TenantLoginRequiredMixin, tenant_login_required
from tenancy.auth.backends import TenantUserBackend
from tenancy.auth.forms import TenantAuthenticationForm
from tenancy.auth.middleware import TenantAuthenticationMiddleware
from tenancy.auth.models import (
    AbstractTenantUser,
    AnonymousTenantUser,
    TenantUserManager,
    get_tenant_user_model,
    get_tenant_user_template,
)
from tenancy.auth.sessions import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    TENANT_SESSION_KEY,
    authenticate,
    get_user,
    login,
    logout,
    update_session_auth_hash,
)
from tenancy.auth.views import TenantLoginView, TenantLogoutView

__all__ = [
    "BACKEND_SESSION_KEY",
    "HASH_SESSION_KEY",
    "SESSION_KEY",
    "TENANT_SESSION_KEY",
    "AbstractTenantUser",
    "AnonymousTenantUser",
    "TenantAuthenticationForm",
    "TenantAuthenticationMiddleware",
    "TenantLoginRequiredMixin",
    "TenantLoginView",
    "TenantLogoutView",
    "TenantUserBackend",
    "TenantUserManager",
    "authenticate",
    "get_tenant_user_model",
    "get_tenant_user_template",
    "get_user",
    "login",
    "logout",
    "tenant_login_required",
    "update_session_auth_hash",
]

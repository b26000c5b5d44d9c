"""A tenant user's login in the session: authenticate, log in, log out, restore it, keep
it after a password change, and the session keys it is kept under.

The functions mirror ``django.contrib.auth``'s, with two differences that are
the reason this module exists: the backends are ``TENANCY_AUTHENTICATION_BACKENDS``,
and the login is stored under keys of its own, bound to the tenant's
incarnation, so a shared (staff) user logged in to the same session stays
logged in, and a login made on one tenant is never honoured by another (nor
by the same tenant signed up again).
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any, cast

from django.contrib import auth as django_auth
from django.contrib.auth import load_backend
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from django.middleware.csrf import rotate_token
from django.utils.crypto import constant_time_compare
from django.views.decorators.debug import sensitive_variables

from tenancy._primitives import conf
from tenancy._primitives.markers import TENANT_ATTR
from tenancy.auth.configured import configured_backends
from tenancy.auth.models import (
    AbstractTenantUser,
    AnonymousTenantUser,
    get_tenant_user_model,
    get_tenant_user_template,
)

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

__all__ = [
    "BACKEND_SESSION_KEY",
    "HASH_SESSION_KEY",
    "SESSION_KEY",
    "TENANT_SESSION_KEY",
    "authenticate",
    "get_user",
    "login",
    "logout",
    "update_session_auth_hash",
]

#: Session key of the logged-in tenant user's primary key (a string, as Django stores it).
SESSION_KEY = "_tenancy_user_id"
#: Session key of the dotted path of the backend that authenticated the tenant user.
BACKEND_SESSION_KEY = "_tenancy_user_backend"
#: Session key of the tenant user's session auth hash (an HMAC of its password hash).
HASH_SESSION_KEY = "_tenancy_user_hash"
#: Session key of the incarnation of the tenant the user was logged in to.
TENANT_SESSION_KEY = "_tenancy_user_tenant"

_SESSION_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY, TENANT_SESSION_KEY)

#: The sender of ``user_login_failed``: the public package, as Django's is
#: ``"django.contrib.auth"``, so that a receiver filtering on it does not depend on which
#: module of the package sends it.
_SIGNAL_SENDER = "tenancy.auth"

_SENSITIVE_CREDENTIALS = re.compile("api|token|key|secret|password|signature", re.IGNORECASE)


@sensitive_variables("credentials")
def authenticate(request: HttpRequest, **credentials: Any) -> AbstractTenantUser | None:
    """Return the user of ``request.tenant`` that ``credentials`` name, or None.

    As ``django.contrib.auth.authenticate()``, over the backends of
    ``TENANCY_AUTHENTICATION_BACKENDS`` (never ``AUTHENTICATION_BACKENDS``): the
    first backend that accepts the credentials' names and returns a user wins,
    one that raises ``PermissionDenied`` stops the search; the user gets a
    ``backend`` attribute; ``user_login_failed`` is sent when none does.
    """
    for backend, path in configured_backends():
        try:
            inspect.signature(backend.authenticate).bind(request, **credentials)
        except TypeError:
            continue  # this backend does not take these credentials
        try:
            user = backend.authenticate(request, **credentials)
        except PermissionDenied:
            break
        if user is None:
            continue
        user.backend = path
        return cast("AbstractTenantUser", user)
    cleaned = {
        key: "********************" if _SENSITIVE_CREDENTIALS.search(key) else value
        for key, value in credentials.items()
    }
    user_login_failed.send(sender=_SIGNAL_SENDER, credentials=cleaned, request=request)
    return None


def login(request: HttpRequest, user: AbstractTenantUser, backend: str | None = None) -> None:
    """Keep ``user``, a user of ``request.tenant``, logged in in the session.

    As ``django.contrib.auth.login()``: the session key is rotated (a session
    of another tenant user is emptied first), the CSRF token rotated,
    ``user_logged_in`` sent (which updates ``last_login``). The session
    remembers the user's id, its backend, its session auth hash and the
    tenant's incarnation, under keys of its own (:data:`SESSION_KEY`, ...),
    so a shared user logged in to the same session stays logged in.
    Raises ``ValueError`` for a user of another tenant, or a request without one.
    """
    tenant = _tenant_of(request, "login")
    if not _belongs_to(user, tenant):
        raise ValueError(
            f"{user!r} is not a user of the request's tenant {tenant}: log in a user of "
            f"{get_tenant_user_template().__name__}.for_tenant(request.tenant)."
        )
    if user.pk is None:
        raise ValueError(f"{user!r} is not saved: save it before logging it in.")
    backend_path = _backend_path(user, backend)
    session = request.session
    session_auth_hash = user.get_session_auth_hash()
    user_id = user._meta.pk.value_to_string(user)
    if SESSION_KEY in session:
        if (
            session.get(SESSION_KEY) != user_id
            or session.get(TENANT_SESSION_KEY) != tenant.incarnation
            or not constant_time_compare(session.get(HASH_SESSION_KEY, ""), session_auth_hash)
        ):
            # Another (tenant) user's session: start an empty one, as Django does.
            session.flush()
    else:
        session.cycle_key()
    session[SESSION_KEY] = user_id
    session[BACKEND_SESSION_KEY] = backend_path
    session[HASH_SESSION_KEY] = session_auth_hash
    session[TENANT_SESSION_KEY] = tenant.incarnation
    request.tenant_user = user  # type: ignore[attr-defined]
    rotate_token(request)
    user_logged_in.send(sender=user.__class__, request=request, user=user)


def logout(request: HttpRequest) -> None:
    """Log the tenant user out: send ``user_logged_out``, then forget the login.

    With no shared user in the session the session is flushed, as
    ``django.contrib.auth.logout()`` does; with one (Django's own keys), only
    the tenant user's keys are removed and the session key rotated, so the
    shared user stays logged in.
    """
    user = getattr(request, "tenant_user", None)
    if not getattr(user, "is_authenticated", False):
        user = None
    user_logged_out.send(sender=user.__class__, request=request, user=user)
    _forget(request)
    request.tenant_user = AnonymousTenantUser()  # type: ignore[attr-defined]


def get_user(request: HttpRequest) -> AbstractTenantUser | AnonymousTenantUser:
    """Return the tenant user logged in to ``request``'s session for ``request.tenant``,
    or an :class:`AnonymousTenantUser`.

    Nobody is returned when the request has no tenant, or when the session's
    login was made on another tenant, or on an earlier incarnation of this one
    (deleted and signed up again), or by a backend no longer listed in
    ``TENANCY_AUTHENTICATION_BACKENDS``. The login is forgotten (as by
    :func:`logout`, without the signal) when the user is gone or can no longer
    authenticate (inactive), or when its session auth hash no longer matches
    (its password changed).
    """
    tenant = getattr(request, "tenant", None)
    session = request.session
    if tenant is None or SESSION_KEY not in session:
        return AnonymousTenantUser()
    if session.get(TENANT_SESSION_KEY) != tenant.incarnation:
        return AnonymousTenantUser()  # another tenant's login: left for that tenant
    backend_path = session.get(BACKEND_SESSION_KEY)
    if backend_path not in conf.authentication_backends():
        return AnonymousTenantUser()
    backend: Any = load_backend(backend_path)
    model = get_tenant_user_model(tenant)
    try:
        user_id = model._meta.pk.to_python(session[SESSION_KEY])
    except ValidationError:
        user_id = None
    user = backend.get_tenant_user(tenant, user_id) if user_id is not None else None
    if user is None or not _session_verified(request, user):
        _forget(request)
        return AnonymousTenantUser()
    return cast("AbstractTenantUser", user)


def update_session_auth_hash(request: HttpRequest, user: AbstractTenantUser) -> None:
    """Keep the current session logged in after ``user`` changed its own password.

    As ``django.contrib.auth.update_session_auth_hash()``: the session key is
    rotated, and when ``user`` is the request's tenant user the session gets
    its new session auth hash; every other session of the user is logged out.
    """
    session = request.session
    session.cycle_key()
    current = getattr(request, "tenant_user", None)
    if current is not None and current.is_authenticated and current == user:
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()


def _session_verified(request: HttpRequest, user: AbstractTenantUser) -> bool:
    """Whether the session's auth hash is the user's (or one of a ``SECRET_KEY_FALLBACKS``,
    which is then replaced by the current one)."""
    session = request.session
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    if any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    ):
        session.cycle_key()
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        return True
    return False


def _forget(request: HttpRequest) -> None:
    """Forget the tenant login of ``request``'s session; keep a shared user's login."""
    session = request.session
    if django_auth.SESSION_KEY in session:
        for key in _SESSION_KEYS:
            session.pop(key, None)
        session.cycle_key()
    else:
        session.flush()


def _tenant_of(request: HttpRequest, caller: str) -> AbstractTenant:
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        raise ValueError(
            f"tenancy.auth.{caller}() needs a request for a tenant (request.tenant, set by "
            "tenancy.middleware.TenantMiddleware); this one names none."
        )
    return cast("AbstractTenant", tenant)


def _belongs_to(user: Any, tenant: AbstractTenant) -> bool:
    """Whether ``user`` is a row of ``tenant``'s class of the tenant user template (schema
    names are never given twice, so the schema names the tenant's incarnation)."""
    return (
        isinstance(user, get_tenant_user_template())
        and getattr(user.__class__, TENANT_ATTR, None) == tenant.db_schema
    )


def _backend_path(user: Any, backend: str | None) -> str:
    """Return the backend to record for ``user``, as ``django.contrib.auth.login()`` does."""
    path = backend or getattr(user, "backend", None)
    if path is None:
        paths = conf.authentication_backends()
        if len(paths) != 1:
            raise ValueError(
                "Several TENANCY_AUTHENTICATION_BACKENDS are configured: pass login() the "
                "`backend` argument, or log in a user that tenancy.auth.authenticate() returned."
            )
        path = paths[0]
    if not isinstance(path, str):
        raise TypeError(f"backend must be a dotted import path string (got {path!r}).")
    if path not in conf.authentication_backends():
        raise ValueError(f"{path!r} is not one of TENANCY_AUTHENTICATION_BACKENDS.")
    return path

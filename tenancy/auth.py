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
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.conf import settings
from django.contrib import auth as django_auth
from django.contrib.auth import REDIRECT_FIELD_NAME, load_backend
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import make_password
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import models
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    QueryDict,
)
from django.middleware.csrf import rotate_token
from django.shortcuts import resolve_url
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.decorators import method_decorator
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.generic import FormView, View

from tenancy._classes.registry import TEMPLATES, TemplateManagerDescriptor
from tenancy._primitives import conf
from tenancy._primitives.markers import TENANT_ATTR, is_template
from tenancy.models import TenantModel

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

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

#: Session key of the logged-in tenant user's primary key (a string, as Django stores it).
SESSION_KEY = "_tenancy_user_id"
#: Session key of the dotted path of the backend that authenticated the tenant user.
BACKEND_SESSION_KEY = "_tenancy_user_backend"
#: Session key of the tenant user's session auth hash (an HMAC of its password hash).
HASH_SESSION_KEY = "_tenancy_user_hash"
#: Session key of the incarnation of the tenant the user was logged in to.
TENANT_SESSION_KEY = "_tenancy_user_tenant"

_SESSION_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY, TENANT_SESSION_KEY)

_View = TypeVar("_View", bound=Callable[..., HttpResponse])


# -- the user model ----------------------------------------------------------------------


class TenantUserManager(BaseUserManager):
    """The manager of tenant users: ``create_user()`` and ``create_superuser()``, as
    Django's ``UserManager``, on the tenant's class (``Member.for_tenant(t).objects``)."""

    use_in_migrations = True

    def _create_user(
        self, username: str, email: str | None, password: str | None, **extra_fields: Any
    ) -> Any:
        if not username:
            raise ValueError("The given username must be set.")
        # Class attributes and methods, not the model's: a historical model (RunPython in
        # a tenant migration) has the fields only.
        model: Any = self.model
        username_field = getattr(model, "USERNAME_FIELD", "username")
        email_field = getattr(model, "EMAIL_FIELD", "email")
        extra_fields.setdefault(email_field, self.normalize_email(email))
        user = model(
            **{username_field: AbstractBaseUser.normalize_username(username)}, **extra_fields
        )
        user.password = make_password(password)  # None: an unusable password
        user.save(using=self._db)
        return user

    def create_user(
        self,
        username: str,
        email: str | None = None,
        password: str | None = None,
        **extra_fields: Any,
    ) -> Any:
        """Create and return a user of this tenant; no password means an unusable one."""
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(username, email, password, **extra_fields)

    def create_superuser(
        self,
        username: str,
        email: str | None = None,
        password: str | None = None,
        **extra_fields: Any,
    ) -> Any:
        """Create and return a superuser of this tenant (every permission in the tenant)."""
        extra_fields.setdefault("is_superuser", True)
        if extra_fields.get("is_superuser") is not True:
            raise ValueError("A superuser must have is_superuser=True.")
        return self._create_user(username, email, password, **extra_fields)


class AbstractTenantUser(AbstractBaseUser, TenantModel):
    """Abstract base of the project's tenant user template (``TENANCY_USER_MODEL``).

    Django's ``AbstractBaseUser`` (``password``, ``last_login``,
    ``set_password()``, ``check_password()``, ``get_session_auth_hash()``)
    with a username unique within the tenant, an email, ``is_active``,
    ``is_superuser`` and ``date_joined``, and permission helpers that ask the
    backends of ``TENANCY_AUTHENTICATION_BACKENDS``. A tenant user is never
    staff: ``is_staff`` is always False, so the admin refuses it. Example::

        class Member(AbstractTenantUser):
            display_name = models.CharField(max_length=100, blank=True)
    """

    username_validator = UnicodeUsernameValidator()

    username = models.CharField(
        _("username"),
        max_length=150,
        unique=True,
        help_text=_("Required. 150 characters or fewer. Letters, digits and @/./+/-/_ only."),
        validators=[username_validator],
        error_messages={"unique": _("A user with that username already exists.")},
    )
    email = models.EmailField(_("email address"), blank=True)
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("Designates whether this user can log in. Unselect it instead of deleting."),
    )
    is_superuser = models.BooleanField(
        _("superuser status"),
        default=False,
        help_text=_("Designates that this user has every permission within its tenant."),
    )
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    #: Tenant users never enter the admin, which serves the shared staff users.
    is_staff: ClassVar[bool] = False

    objects = TenantUserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["email"]

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        email_field = self.get_email_field_name()
        setattr(self, email_field, TenantUserManager.normalize_email(getattr(self, email_field)))

    def get_user_permissions(self, obj: Any = None) -> set[str]:
        """Return the permissions (``"app_label.codename"``) the tenant backends give
        this user itself."""
        return _permissions(self, "get_user_permissions", obj)

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        """Return every permission the tenant backends give this user."""
        return _permissions(self, "get_all_permissions", obj)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        """Whether the user has ``perm`` in its tenant: an active superuser has every
        permission; otherwise the tenant backends decide (one that raises
        ``PermissionDenied`` refuses at once), as Django's ``PermissionsMixin``."""
        if self.is_active and self.is_superuser:
            return True
        return _has_perm(self, perm, obj)

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        """Whether the user has every permission of ``perm_list``."""
        if isinstance(perm_list, str):
            raise ValueError("perm_list must be an iterable of permissions.")
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        """Whether the user has any permission of ``app_label`` in its tenant."""
        if self.is_active and self.is_superuser:
            return True
        return _has_module_perms(self, app_label)


# Managers inherited from an abstract mixin are not the template's own: guard them too,
# so that ``Member.objects`` raises TemplateModelUsed (pointing to for_tenant()).
for _manager in AbstractTenantUser._meta.local_managers:
    setattr(AbstractTenantUser, _manager.name, TemplateManagerDescriptor(_manager))


class AnonymousTenantUser:
    """``request.tenant_user`` when no tenant user is logged in (Django's ``AnonymousUser``
    for tenant users: not authenticated, no primary key, permissions from the tenant
    backends, which give none by default)."""

    id = None
    pk = None
    username = ""
    is_staff = False
    is_active = False
    is_superuser = False
    is_anonymous = True
    is_authenticated = False

    def __str__(self) -> str:
        return "AnonymousTenantUser"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__)

    def __hash__(self) -> int:
        return 1

    def get_username(self) -> str:
        return self.username

    def save(self) -> None:
        raise NotImplementedError("An anonymous tenant user is not stored anywhere.")

    def delete(self) -> None:
        raise NotImplementedError("An anonymous tenant user is not stored anywhere.")

    def set_password(self, raw_password: str) -> None:
        raise NotImplementedError("An anonymous tenant user has no password.")

    def check_password(self, raw_password: str) -> bool:
        raise NotImplementedError("An anonymous tenant user has no password.")

    def get_user_permissions(self, obj: Any = None) -> set[str]:
        return _permissions(self, "get_user_permissions", obj)

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return _permissions(self, "get_all_permissions", obj)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return _has_perm(self, perm, obj)

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        if isinstance(perm_list, str):
            raise ValueError("perm_list must be an iterable of permissions.")
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return _has_module_perms(self, app_label)


def get_tenant_user_template() -> type[AbstractTenantUser]:
    """Return the tenant user template named by ``TENANCY_USER_MODEL``.

    Raises ``ImproperlyConfigured`` when the setting is missing or malformed,
    or names no template derived from :class:`AbstractTenantUser`.
    """
    label = conf.user_model_label()
    template = TEMPLATES.get(label.lower())
    if template is None or not is_template(template):
        raise ImproperlyConfigured(
            f"TENANCY_USER_MODEL refers to {label!r}, which is not a tenant model template: "
            "declare it in the models of an installed app as a subclass of "
            "tenancy.auth.AbstractTenantUser."
        )
    if not issubclass(template, AbstractTenantUser):
        raise ImproperlyConfigured(
            f"TENANCY_USER_MODEL refers to {label!r}, which does not derive from "
            "tenancy.auth.AbstractTenantUser."
        )
    return template


def get_tenant_user_model(tenant: AbstractTenant) -> type[AbstractTenantUser]:
    """Return ``tenant``'s class of the tenant user template (``Template.for_tenant()``)."""
    return get_tenant_user_template().for_tenant(tenant)


# -- backends ----------------------------------------------------------------------------


class TenantUserBackend:
    """Authenticate a username and password against ``request.tenant``'s users only.

    List it in ``TENANCY_AUTHENTICATION_BACKENDS`` (the default), not in
    ``AUTHENTICATION_BACKENDS``. Without a request, or a request without a
    tenant, it authenticates nobody. Subclass it to give tenant users
    permissions: override :meth:`get_user_permissions`.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> AbstractTenantUser | None:
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return None
        model = get_tenant_user_model(tenant)
        if username is None:
            username = kwargs.get(model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            manager: Any = model._default_manager
            user = manager.get_by_natural_key(username)
        except model.DoesNotExist:
            # Hash the password anyway, so that the time taken does not tell whether
            # the user exists (as Django's ModelBackend).
            model().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return cast("AbstractTenantUser", user)
        return None

    def get_user(self, user_id: Any) -> None:
        """Return None: without the request there is no tenant to look the user up in.

        Django's session machinery calls this; tenant users are restored by
        :func:`tenancy.auth.get_user` with :meth:`get_tenant_user` instead.
        """
        return None

    def get_tenant_user(self, tenant: AbstractTenant, user_id: Any) -> AbstractTenantUser | None:
        """Return ``tenant``'s user ``user_id`` if it may still be logged in, else None."""
        model = get_tenant_user_model(tenant)
        try:
            user = model._default_manager.get(pk=user_id)
        except model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

    def user_can_authenticate(self, user: Any) -> bool:
        """Refuse inactive users (``is_active`` False), as Django's ``ModelBackend``."""
        return bool(getattr(user, "is_active", True))

    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        """Return the permissions of ``user_obj`` itself: none by default (override it)."""
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        """Return every permission of ``user_obj``: none for an inactive or anonymous user."""
        if not getattr(user_obj, "is_active", False) or user_obj.is_anonymous:
            return set()
        return self.get_user_permissions(user_obj, obj)

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        """Whether ``user_obj``, a tenant user, has ``perm``; False for any other user."""
        if not isinstance(user_obj, AbstractTenantUser | AnonymousTenantUser):
            return False
        if user_obj.is_active and user_obj.is_superuser:
            return True
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        """Whether ``user_obj``, a tenant user, has any permission of ``app_label``."""
        if not isinstance(user_obj, AbstractTenantUser | AnonymousTenantUser):
            return False
        if user_obj.is_active and user_obj.is_superuser:
            return True
        prefix = f"{app_label}."
        return any(perm.startswith(prefix) for perm in self.get_all_permissions(user_obj))


def _backends() -> list[tuple[Any, str]]:
    """Return the tenant backends of ``TENANCY_AUTHENTICATION_BACKENDS``, with their paths."""
    paths = conf.authentication_backends()
    if not paths:
        raise ImproperlyConfigured(
            "TENANCY_AUTHENTICATION_BACKENDS is empty: list at least "
            "'tenancy.auth.TenantUserBackend'."
        )
    return [(load_backend(path), path) for path in paths]


def _permissions(user: Any, method: str, obj: Any) -> set[str]:
    found: set[str] = set()
    for backend, _path in _backends():
        if hasattr(backend, method):
            found.update(getattr(backend, method)(user, obj))
    return found


def _has_perm(user: Any, perm: str, obj: Any) -> bool:
    for backend, _path in _backends():
        if not hasattr(backend, "has_perm"):
            continue
        try:
            if backend.has_perm(user, perm, obj):
                return True
        except PermissionDenied:
            return False
    return False


def _has_module_perms(user: Any, app_label: str) -> bool:
    for backend, _path in _backends():
        if not hasattr(backend, "has_module_perms"):
            continue
        try:
            if backend.has_module_perms(user, app_label):
                return True
        except PermissionDenied:
            return False
    return False


# -- authenticate, login, logout, restore --------------------------------------------------

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
    for backend, path in _backends():
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
    user_login_failed.send(sender=__name__, credentials=cleaned, request=request)
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


class TenantAuthenticationMiddleware:
    """Set ``request.tenant_user``, the tenant user logged in to the request's tenant,
    loaded from the session at its first use (:func:`get_user`).

    Place it after ``SessionMiddleware`` and ``TenantMiddleware`` (and, for
    shared users, Django's ``AuthenticationMiddleware``, which keeps setting
    ``request.user``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not hasattr(request, "session"):
            raise ImproperlyConfigured(
                "tenancy.auth.TenantAuthenticationMiddleware needs the session: put "
                "'django.contrib.sessions.middleware.SessionMiddleware' before it in MIDDLEWARE."
            )
        if not hasattr(request, "tenant"):
            raise ImproperlyConfigured(
                "tenancy.auth.TenantAuthenticationMiddleware needs request.tenant: put "
                "'tenancy.middleware.TenantMiddleware' before it in MIDDLEWARE."
            )
        request.tenant_user = SimpleLazyObject(lambda: get_user(request))  # type: ignore[attr-defined]
        return self.get_response(request)


# -- views, forms, decorators ----------------------------------------------------------------


def _redirect_to_login(request: HttpRequest, login_url: str | None, field: str) -> HttpResponse:
    """Redirect to the tenant login page with the current URL in ``field`` (as Django's
    ``redirect_to_login()``; a login page on the same host gets only the path)."""
    path = request.build_absolute_uri()
    resolved = resolve_url(login_url or conf.login_url())
    login_scheme, login_netloc = urlsplit(resolved)[:2]
    current_scheme, current_netloc = urlsplit(path)[:2]
    if (not login_scheme or login_scheme == current_scheme) and (
        not login_netloc or login_netloc == current_netloc
    ):
        path = request.get_full_path()
    if not field:
        return HttpResponseRedirect(resolved)
    parts = list(urlsplit(resolved))
    query = QueryDict(parts[3], mutable=True)
    query[field] = path
    parts[3] = query.urlencode(safe="/")
    return HttpResponseRedirect(urlunsplit(parts))


def tenant_login_required(
    function: _View | None = None,
    redirect_field_name: str = REDIRECT_FIELD_NAME,
    login_url: str | None = None,
) -> Any:
    """Django's ``login_required`` for tenant users: a view that needs
    ``request.tenant_user`` to be authenticated, else redirects to ``login_url``
    (default ``TENANCY_LOGIN_URL``, else ``LOGIN_URL``)."""

    def decorator(view: _View) -> _View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if _tenant_user(request).is_authenticated:
                return view(request, *args, **kwargs)
            return _redirect_to_login(request, login_url, redirect_field_name)

        return cast("_View", wrapped)

    return decorator(function) if function is not None else decorator


def _tenant_user(request: HttpRequest) -> Any:
    try:
        return request.tenant_user  # type: ignore[attr-defined]
    except AttributeError:
        raise ImproperlyConfigured(
            "request.tenant_user is not set: add 'tenancy.auth.TenantAuthenticationMiddleware' "
            "to MIDDLEWARE, after TenantMiddleware."
        ) from None


class TenantLoginRequiredMixin:
    """Django's ``LoginRequiredMixin`` for tenant users: the view needs
    ``request.tenant_user`` to be authenticated, else redirects to ``login_url``
    (default ``TENANCY_LOGIN_URL``, else ``LOGIN_URL``)."""

    login_url: str | None = None
    redirect_field_name: str = REDIRECT_FIELD_NAME

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _tenant_user(request).is_authenticated:
            return _redirect_to_login(request, self.login_url, self.redirect_field_name)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


class TenantAuthenticationForm(forms.Form):
    """Django's ``AuthenticationForm`` for tenant users: a username and a password,
    checked by :func:`authenticate` against ``request.tenant``'s users.

    ``confirm_login_allowed(user)`` refuses inactive users; override it to
    refuse others. ``get_user()`` returns the authenticated user.
    """

    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        "invalid_login": _(
            "Please enter a correct %(username)s and password. Note that both "
            "fields may be case-sensitive."
        ),
        "inactive": _("This account is inactive."),
    }
    #: The tenant user template's ``USERNAME_FIELD``.
    username_field: Any

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        self.request = request
        self.user_cache: AbstractTenantUser | None = None
        super().__init__(*args, **kwargs)
        template = get_tenant_user_template()
        self.username_field = template._meta.get_field(template.USERNAME_FIELD)
        username: Any = self.fields["username"]
        max_length = getattr(self.username_field, "max_length", None) or 254
        username.max_length = max_length
        username.widget.attrs["maxlength"] = max_length
        if username.label is None:
            username.label = str(self.username_field.verbose_name).capitalize()

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            if self.request is None:
                raise ValueError("TenantAuthenticationForm needs the request (request=...).")
            self.user_cache = authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    def confirm_login_allowed(self, user: AbstractTenantUser) -> None:
        """Refuse an inactive user (raise ``ValidationError``); override to refuse more."""
        if not user.is_active:
            raise ValidationError(self.error_messages["inactive"], code="inactive")

    def get_user(self) -> AbstractTenantUser | None:
        return self.user_cache

    def get_invalid_login_error(self) -> ValidationError:
        return ValidationError(
            self.error_messages["invalid_login"],
            code="invalid_login",
            params={"username": self.username_field.verbose_name},
        )


class _RedirectMixin:
    """The ``next`` parameter, accepted only for this host (as Django's ``RedirectURLMixin``)."""

    request: HttpRequest
    next_page: str | None = None
    redirect_field_name: str = REDIRECT_FIELD_NAME
    success_url_allowed_hosts: ClassVar[set[str]] = set()

    def get_redirect_url(self) -> str:
        """Return the ``next`` URL given by POST or GET, or "" when it is not safe."""
        url = self.request.POST.get(
            self.redirect_field_name, self.request.GET.get(self.redirect_field_name)
        )
        allowed = {self.request.get_host(), *self.success_url_allowed_hosts}
        safe = url_has_allowed_host_and_scheme(
            url, allowed_hosts=allowed, require_https=self.request.is_secure()
        )
        return url if url and safe else ""


@method_decorator([sensitive_post_parameters(), csrf_protect, never_cache], name="dispatch")
class TenantLoginView(_RedirectMixin, FormView):
    """Django's ``LoginView`` for tenant users: shows :class:`TenantAuthenticationForm`
    (template ``tenancy/login.html``), logs the user in with :func:`login` and
    redirects to a safe ``next``, to ``next_page``, or to ``LOGIN_REDIRECT_URL``.
    With ``redirect_authenticated_user``, a logged-in tenant user is redirected at once;
    a request without a tenant gets ``Http404``."""

    form_class = TenantAuthenticationForm
    template_name = "tenancy/login.html"
    redirect_authenticated_user = False

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if getattr(request, "tenant", None) is None:
            raise Http404("There is no tenant to log in to at this address.")
        if self.redirect_authenticated_user and _tenant_user(request).is_authenticated:
            redirect_to = self.get_success_url()
            if redirect_to == request.path:
                raise ValueError(
                    "Redirection loop for authenticated user detected. Check that your "
                    "LOGIN_REDIRECT_URL doesn't point to a login page."
                )
            return HttpResponseRedirect(redirect_to)
        return super().dispatch(request, *args, **kwargs)

    def get_success_url(self) -> str:
        return self.get_redirect_url() or resolve_url(self.next_page or settings.LOGIN_REDIRECT_URL)

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["request"] = self.request
        return kwargs

    def form_valid(self, form: Any) -> HttpResponse:
        login(self.request, form.get_user())
        return HttpResponseRedirect(self.get_success_url())

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            {
                self.redirect_field_name: self.get_redirect_url(),
                "tenant": getattr(self.request, "tenant", None),
            }
        )
        return context


@method_decorator([csrf_protect, never_cache], name="dispatch")
class TenantLogoutView(_RedirectMixin, View):
    """Django's ``LogoutView`` for tenant users: a POST logs the tenant user out
    (:func:`logout`) and redirects to a safe ``next``, to ``next_page``, to
    ``LOGOUT_REDIRECT_URL``, or to the tenant login page (``TENANCY_LOGIN_URL``)."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        logout(request)
        return HttpResponseRedirect(self.get_success_url())

    def get_success_url(self) -> str:
        fallback = self.next_page or settings.LOGOUT_REDIRECT_URL or conf.login_url()
        return self.get_redirect_url() or resolve_url(fallback)

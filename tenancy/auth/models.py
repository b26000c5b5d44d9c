"""The tenant user model: the abstract template, its manager, the anonymous tenant user,
and finding the project's template (``TENANCY_USER_MODEL``).

Everything else in :mod:`tenancy.auth` (backends, sessions, views) needs these
and nothing here needs them, so the model sits at the bottom of the package.
Permission questions go to the tenant backends through
:mod:`tenancy.auth.permissions`, which loads them by their dotted paths, so
the model never imports a backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import make_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenancy._classes.registry import TEMPLATES, TemplateManagerDescriptor
from tenancy._primitives import conf
from tenancy._primitives.markers import is_template
from tenancy.auth import permissions
from tenancy.models import TenantModel

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

__all__ = [
    "AbstractTenantUser",
    "AnonymousTenantUser",
    "TenantUserManager",
    "get_tenant_user_model",
    "get_tenant_user_template",
]

#: The path migration files name :class:`TenantUserManager` by (``makemigrations``
#: serialises managers): the public one, which existing migrations already contain and
#: which must not change when the module that defines the class moves.
_MANAGER_PATH = "tenancy.auth.TenantUserManager"


class TenantUserManager(BaseUserManager):
    """The manager of tenant users: ``create_user()`` and ``create_superuser()``, as
    Django's ``UserManager``, on the tenant's class (``Member.for_tenant(t).objects``)."""

    use_in_migrations = True

    def deconstruct(
        self,
    ) -> tuple[bool, str | None, str | None, Sequence[Any] | None, dict[str, Any] | None]:
        """Name this class by its public path in migrations (a subclass keeps its own)."""
        as_manager, path, queryset, args, kwargs = super().deconstruct()
        if path == f"{__name__}.{TenantUserManager.__name__}":
            path = _MANAGER_PATH
        return as_manager, path, queryset, args, kwargs

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
        return permissions.backend_permissions(self, "get_user_permissions", obj)

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        """Return every permission the tenant backends give this user."""
        return permissions.backend_permissions(self, "get_all_permissions", obj)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        """Whether the user has ``perm`` in its tenant: an active superuser has every
        permission; otherwise the tenant backends decide (one that raises
        ``PermissionDenied`` refuses at once), as Django's ``PermissionsMixin``."""
        if self.is_active and self.is_superuser:
            return True
        return permissions.has_perm(self, perm, obj)

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        """Whether the user has every permission of ``perm_list``."""
        if isinstance(perm_list, str):
            raise ValueError("perm_list must be an iterable of permissions.")
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        """Whether the user has any permission of ``app_label`` in its tenant."""
        if self.is_active and self.is_superuser:
            return True
        return permissions.has_module_perms(self, app_label)


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
        return permissions.backend_permissions(self, "get_user_permissions", obj)

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return permissions.backend_permissions(self, "get_all_permissions", obj)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return permissions.has_perm(self, perm, obj)

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        if isinstance(perm_list, str):
            raise ValueError("perm_list must be an iterable of permissions.")
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return permissions.has_module_perms(self, app_label)


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

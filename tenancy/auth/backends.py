"""The authentication backend of tenant users: credentials checked against the users of
``request.tenant`` only.

A backend of its own, listed in ``TENANCY_AUTHENTICATION_BACKENDS`` and never in
``AUTHENTICATION_BACKENDS``: Django's backends look up the shared users, and
Django's session machinery restores users without a request, hence without a
tenant. The dotted path projects and sessions name it by is the public one,
``"tenancy.auth.TenantUserBackend"``; it works through the package's
re-export, so moving the class between modules changes no stored session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.http import HttpRequest

from tenancy.auth.models import AbstractTenantUser, AnonymousTenantUser, get_tenant_user_model

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

__all__ = ["TenantUserBackend"]


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

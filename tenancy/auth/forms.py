"""The login form of tenant users: Django's ``AuthenticationForm``, checked against
``request.tenant``'s users.

Django's form authenticates through ``AUTHENTICATION_BACKENDS`` and sizes its
username field from ``AUTH_USER_MODEL``, both the staff's; this one uses
:func:`tenancy.auth.authenticate` and the tenant user template.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from tenancy.auth.models import AbstractTenantUser, get_tenant_user_template
from tenancy.auth.sessions import authenticate

__all__ = ["TenantAuthenticationForm"]


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

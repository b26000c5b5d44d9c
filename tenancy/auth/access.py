"""Views that need a tenant user: the ``tenant_login_required`` decorator and
``TenantLoginRequiredMixin``, and the redirect to the tenant login page they share.

Django's ``login_required`` and ``LoginRequiredMixin`` test ``request.user``,
the shared staff user; these test ``request.tenant_user`` and send the visitor
to ``TENANCY_LOGIN_URL``, the tenant hosts' login page, not the staff's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import resolve_url

from tenancy._primitives import conf

__all__ = ["TenantLoginRequiredMixin", "tenant_login_required", "tenant_user_of"]

_View = TypeVar("_View", bound=Callable[..., HttpResponse])


def tenant_user_of(request: HttpRequest) -> Any:
    """Return ``request.tenant_user``; raise ``ImproperlyConfigured`` when the middleware
    that sets it is missing, rather than let an ``AttributeError`` pass for a bug in
    the view."""
    try:
        return request.tenant_user  # type: ignore[attr-defined]
    except AttributeError:
        raise ImproperlyConfigured(
            "request.tenant_user is not set: add 'tenancy.auth.TenantAuthenticationMiddleware' "
            "to MIDDLEWARE, after TenantMiddleware."
        ) from None


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
            if tenant_user_of(request).is_authenticated:
                return view(request, *args, **kwargs)
            return _redirect_to_login(request, login_url, redirect_field_name)

        return cast("_View", wrapped)

    return decorator(function) if function is not None else decorator


class TenantLoginRequiredMixin:
    """Django's ``LoginRequiredMixin`` for tenant users: the view needs
    ``request.tenant_user`` to be authenticated, else redirects to ``login_url``
    (default ``TENANCY_LOGIN_URL``, else ``LOGIN_URL``)."""

    login_url: str | None = None
    redirect_field_name: str = REDIRECT_FIELD_NAME

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not tenant_user_of(request).is_authenticated:
            return _redirect_to_login(request, self.login_url, self.redirect_field_name)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

"""``request.tenant_user``: the middleware that restores a tenant user's login per request.

Django's ``AuthenticationMiddleware`` keeps setting ``request.user`` (the shared
staff user); this one sets the tenant user beside it, lazily, so a request
that never looks at it costs no query. It needs the session and
``request.tenant``, and says so at the first request rather than failing later
in a view; the system check ``tenancy.E009`` reports a wrong order earlier,
at start-up.

It is sync and async capable: it reads nothing itself, so under ASGI it runs on
the event loop. From an async view, read ``request.tenant_user`` in synchronous
code (``await sync_to_async(lambda: request.tenant_user.is_authenticated)()``):
its first use queries the session and the user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from tenancy.auth.sessions import get_user

__all__ = ["TenantAuthenticationMiddleware"]


class TenantAuthenticationMiddleware:
    """Set ``request.tenant_user``, the tenant user logged in to the request's tenant,
    loaded from the session at its first use (:func:`get_user`).

    Place it after ``SessionMiddleware`` and ``TenantMiddleware`` (and, for
    shared users, Django's ``AuthenticationMiddleware``, which keeps setting
    ``request.user``).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        self._prepare(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self._prepare(request)
        get_response = cast("Callable[[HttpRequest], Awaitable[HttpResponse]]", self.get_response)
        return await get_response(request)

    def _prepare(self, request: HttpRequest) -> None:
        """Check the middleware order; set the lazy ``request.tenant_user``."""
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

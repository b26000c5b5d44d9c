"""The login and logout views of tenant users: Django's ``LoginView`` and ``LogoutView``,
served on the tenants' hosts.

They log the tenant user in and out with :func:`tenancy.auth.login` and
:func:`tenancy.auth.logout`, which leave a shared (staff) login of the same
session alone, and fall back to ``TENANCY_LOGIN_URL`` rather than the staff's
``LOGIN_URL``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView, View

from tenancy._primitives import conf
from tenancy.auth.access import tenant_user_of
from tenancy.auth.forms import TenantAuthenticationForm
from tenancy.auth.sessions import login, logout

__all__ = ["TenantLoginView", "TenantLogoutView"]


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
        if self.redirect_authenticated_user and tenant_user_of(request).is_authenticated:
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

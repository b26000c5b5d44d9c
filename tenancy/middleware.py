"""Request routing: ``TenantMiddleware`` finds the request's tenant.

Add it to ``MIDDLEWARE`` and views read ``request.tenant``, then use
``Project.for_tenant(request.tenant)``::

    MIDDLEWARE = [..., "tenancy.middleware.TenantMiddleware"]
    TENANCY_TENANT_RESOLVER = "subdomain"      # or "domain", "header", "myapp.routing.resolve"
    TENANCY_BASE_DOMAIN = "example.com"        # acme.example.com -> the tenant "acme"

Per request the middleware costs one query: the tenant row, which also gives
the tenant's state (tenants are not cached across requests, so a tenant that
just became ready is served at once). ``for_tenant()`` is then a dictionary
hit in the per-process class cache.

- A host (or header) naming no tenant at all, such as the bare base domain,
  leaves ``request.tenant = None`` and passes through: the marketing site.
- A host naming a tenant that does not exist raises ``Http404``.
- A tenant that is not ready (or, with ``TENANCY_SERVE_BEHIND = False``, whose
  migrations are behind the running code) gets a 503 response rendered from the template
  ``tenancy/not_ready.html`` (projects override it; a built-in page is used
  when no template engine finds it), with ``Retry-After`` while it is being
  set up. A failed tenant's page says so, without its internal error.

The middleware is sync and async capable: under ASGI, before async views and
middleware, it runs on the event loop and reads the tenant row through
``sync_to_async`` (:func:`aresolve`), and it answers the same 404 and 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.template import TemplateDoesNotExist, loader
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.html import escape
from django.utils.module_loading import import_string

from tenancy._migrating.plan import plan
from tenancy._primitives import conf
from tenancy._primitives.lookup import lookup_field
from tenancy._primitives.shared import tenant_model as get_tenant_model
from tenancy._primitives.states import TenantState, lacks_migrations
from tenancy.exceptions import TenantDeleted, TenantNotReady

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

    class TenantRequest(HttpRequest):
        """A request that went through :class:`TenantMiddleware` (for type checking only)."""

        tenant: AbstractTenant | None


__all__ = [
    "NOT_READY_TEMPLATE",
    "TenantMiddleware",
    "aresolve",
    "by_natural_key",
    "is_behind",
    "is_public_host",
    "lookup",
    "not_ready_response",
    "request_host",
    "resolve",
    "serves",
    "subdomain_key",
]

#: The template of the 503 page; a project overrides it in its own templates.
NOT_READY_TEMPLATE = "tenancy/not_ready.html"

#: The 503 page used when no template engine provides ``NOT_READY_TEMPLATE``.
_FALLBACK_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh}<title>{title}</title>
</head>
<body>
<h1>{title}</h1>
<p>{message}</p>
</body>
</html>
"""

_SETTING_UP = (
    "Setting up your workspace",
    "We are setting up your workspace; it will be ready in a moment.",
)
_UPDATING = (
    "Updating your workspace",
    "We are updating your workspace; it will be back in a moment.",
)
_FAILED = (
    "Your workspace could not be set up",
    "Something went wrong while setting up your workspace. Please contact support.",
)


class TenantMiddleware:
    """Set ``request.tenant`` from the host or a header, per ``TENANCY_TENANT_RESOLVER``.

    Raises ``Http404`` for a tenant that does not exist; answers 503 for one
    that is not ready; sets ``request.tenant = None`` when the request names
    no tenant. Settings are read at each request (see docs/settings.md).
    Sync and async capable: Django gives it an async ``get_response`` under ASGI.
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
        tenant = resolve(request)
        cast("TenantRequest", request).tenant = tenant
        if tenant is not None and not serves(tenant):
            response = not_ready_response(request, tenant, updating=tenant.is_ready)
        else:
            response = self.get_response(request)
        return _vary(response)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        """The async path: the same answers, the row read off the event loop."""
        tenant = await aresolve(request)
        cast("TenantRequest", request).tenant = tenant
        if tenant is not None and not serves(tenant):
            # Rendering may run context processors that query (request.user).
            response = await sync_to_async(not_ready_response)(
                request, tenant, updating=tenant.is_ready
            )
        else:
            get_response = cast(
                "Callable[[HttpRequest], Awaitable[HttpResponse]]", self.get_response
            )
            response = await get_response(request)
        return _vary(response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer 503 when a view used a tenant that is not ready (``for_tenant()``), 404
        when it was deleted meanwhile."""
        if isinstance(exception, TenantNotReady):
            return not_ready_response(request, exception.tenant)
        if isinstance(exception, TenantDeleted):
            raise Http404("This workspace no longer exists.") from exception
        return None


def serves(tenant: AbstractTenant) -> bool:
    """Return whether requests for ``tenant`` reach the views: it is ready and, unless
    ``TENANCY_SERVE_BEHIND``, its schema has every migration of the running code.

    The row is the one the middleware read: a string comparison, no query.
    """
    if tenant.state != TenantState.READY:
        return False
    return conf.serve_behind() or not is_behind(tenant)


def is_behind(tenant: AbstractTenant) -> bool:
    """Return whether a ready ``tenant``'s schema lacks migrations of the running code."""
    the_plan = plan()
    return lacks_migrations(
        tenant.migrations_digest, tenant.migrations_applied, the_plan.digest, len(the_plan.keys)
    )


def _vary(response: HttpResponse) -> HttpResponse:
    if conf.tenant_resolver() == "header":
        # The same URL serves a different tenant per header: caches must know.
        patch_vary_headers(response, [conf.tenant_header()])
    return response


def resolve(request: HttpRequest) -> AbstractTenant | None:
    """Return the tenant the request names, or None if it names none.

    Raises ``Http404`` when it names a tenant that does not exist, and
    ``ImproperlyConfigured`` when the resolver's settings are incomplete.
    """
    find = _finder(request)
    return None if find is None else find()


async def aresolve(request: HttpRequest) -> AbstractTenant | None:
    """The async twin of :func:`resolve`: the host or header is read on the event loop,
    the tenant's row (or a custom resolver, a synchronous function) through
    ``sync_to_async``, only when the request names a tenant."""
    find = _finder(request)
    return None if find is None else await sync_to_async(find)()


def _finder(request: HttpRequest) -> Callable[[], AbstractTenant | None] | None:
    """Return what reads the tenant the request names (the database work), or None if
    it names none; the resolver's settings are checked here."""
    resolver = conf.tenant_resolver()
    if resolver == "subdomain":
        host = request_host(request)
        key = subdomain_key(host)
        return None if key is None else partial(by_natural_key, key, f"subdomain of host {host!r}")
    if resolver == "domain":
        host = request_host(request)
        if is_public_host(host):
            return None
        field = conf.domain_field()
        return partial(lookup, field, host, f"host {host!r} (TENANCY_DOMAIN_FIELD = {field!r})")
    if resolver == "header":
        header = conf.tenant_header()
        value = request.headers.get(header, "").strip()
        return partial(by_natural_key, value, f"header {header}") if value else None
    return partial(_custom, import_string(resolver), request)


def _custom(resolver: Callable[[HttpRequest], Any], request: HttpRequest) -> AbstractTenant | None:
    """Call a custom resolver (``TENANCY_TENANT_RESOLVER`` as a dotted path)."""
    tenant = resolver(request)
    if tenant is not None:
        _refresh_unless_ready(tenant)
    return cast("AbstractTenant | None", tenant)


def request_host(request: HttpRequest) -> str:
    """Return the request's host name: validated by ``ALLOWED_HOSTS``, lower case, no port."""
    domain, _port = split_domain_port(request.get_host())
    return domain.lower()


def subdomain_key(host: str) -> str | None:
    """Return the label of ``host`` directly under ``TENANCY_BASE_DOMAIN``, or None.

    ``acme.example.com`` and ``www.acme.example.com`` give ``"acme"``; the
    bare base domain, a public subdomain (``www.example.com``) and a host
    outside the base domain give None.
    """
    base = conf.base_domain()
    if base is None:
        raise ImproperlyConfigured(
            "TENANCY_BASE_DOMAIN is not set: the 'subdomain' tenant resolver needs the "
            "domain whose subdomains are tenants, e.g. TENANCY_BASE_DOMAIN = 'example.com'."
        )
    if not host.endswith("." + base):
        return None
    key = host.removesuffix("." + base).rsplit(".", 1)[-1]
    return None if key in conf.public_subdomains() else key


def is_public_host(host: str) -> bool:
    """Return whether ``host`` is the base domain or one of its public subdomains."""
    base = conf.base_domain()
    if base is None:
        return False
    return host == base or host in {f"{s}.{base}" for s in conf.public_subdomains()}


def by_natural_key(key: str, source: str) -> AbstractTenant:
    """Return the tenant whose natural key is ``key`` (from ``source``), or raise ``Http404``.

    Uses the default manager's ``get_by_natural_key()`` when it has one, else
    the tenant model's lookup field: ``TENANCY_TENANT_LOOKUP_FIELD``, the model's
    ``TENANT_LOOKUP_FIELD``, or the one field of its ``natural_key()``.
    """
    model = get_tenant_model()
    manager: Any = model._default_manager
    if not hasattr(manager, "get_by_natural_key"):
        return lookup(lookup_field(model), key, source)
    try:
        return manager.get_by_natural_key(key)
    except (model.DoesNotExist, ValueError, ValidationError):
        raise Http404(f"No tenant {key!r} (from the {source}) exists.") from None


def lookup(field: str, value: str, source: str) -> AbstractTenant:
    """Return the tenant whose ``field`` is ``value`` (from ``source``), or raise ``Http404``."""
    model = get_tenant_model()
    try:
        model._meta.get_field(field)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(
            f"{model._meta.label} has no field {field!r} to find tenants by: set "
            "TENANCY_TENANT_LOOKUP_FIELD (subdomain, header) or TENANCY_DOMAIN_FIELD "
            "(domain) to one of its fields."
        ) from None
    try:
        return model._default_manager.get(**{field: value})
    except (model.DoesNotExist, ValueError, ValidationError):
        raise Http404(f"No tenant with {field} = {value!r} (from the {source}) exists.") from None


def not_ready_response(
    request: HttpRequest, tenant: AbstractTenant, *, updating: bool = False
) -> HttpResponse:
    """Return the 503 page of a tenant that is being set up, whose setup failed, or
    (with ``TENANCY_SERVE_BEHIND = False``) whose migrations are behind the code.

    The template gets ``tenant``, ``failed``, ``updating`` (ready but behind the
    code: the page says it is being updated) and ``retry_after`` (seconds, or
    None for a failed tenant: waiting will not help it). The tenant's error is
    never shown.
    """
    failed = tenant.state == TenantState.FAILED
    retry_after = None if failed else conf.retry_after()
    context = {
        "tenant": tenant,
        "failed": failed,
        "updating": updating,
        "retry_after": retry_after,
    }
    try:
        content: str = loader.render_to_string(NOT_READY_TEMPLATE, context, request)
    except TemplateDoesNotExist:
        content = _fallback_page(failed, retry_after, updating=updating)
    response = HttpResponse(content, status=503)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    add_never_cache_headers(response)
    return response


def _fallback_page(failed: bool, retry_after: int | None, *, updating: bool = False) -> str:
    """Return the built-in 503 page, for projects without a template engine."""
    title, message = _FAILED if failed else _UPDATING if updating else _SETTING_UP
    refresh = f'<meta http-equiv="refresh" content="{retry_after}">\n' if retry_after else ""
    return _FALLBACK_PAGE.format(refresh=refresh, title=escape(title), message=escape(message))


def _refresh_unless_ready(tenant: AbstractTenant) -> None:
    """Re-read the state of a tenant a custom resolver returned, if not ready.

    A custom resolver may keep tenants across requests; one that was pending
    then may be ready now.
    """
    if tenant.state != TenantState.READY and tenant.pk is not None:
        tenant.refresh_from_db(fields=["state", "last_error"])

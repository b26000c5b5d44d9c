"""An admin site for a tenant's own data, served on the tenant's host.

Register templates with ordinary ``ModelAdmin`` classes written against them;
each request is served by ModelAdmin instances bound to
``Template.for_tenant(request.tenant)``::

    # myapp/admin.py
    from django.contrib import admin
    from tenancy.tenant_admin import site as tenant_admin
    from myapp.models import Project, Report

    class ReportInline(admin.TabularInline):
        model = Report

    @admin.register(Project, site=tenant_admin)
    class ProjectAdmin(admin.ModelAdmin):
        list_display = ["name", "owner"]
        search_fields = ["name"]
        inlines = [ReportInline]

    # myproject/tenant_urls.py (the URL conf of tenants' hosts)
    urlpatterns = [path("admin/", tenant_admin.urls)]

- Without ``request.tenant`` (the bare domain) every page is a 404; a tenant
  that is not ready gets the 503 page of :mod:`tenancy.middleware`.
- Who may administer which tenant is :meth:`TenantAdminSite.has_tenant_permission`:
  active superusers every tenant, other staff users only a tenant on which
  they hold the object permission ``<app_label>.change_<tenant model>`` (from
  an object-permission backend; Django's ``ModelBackend`` grants none).
  Model permissions are Django's, on the template (``myapp.view_project``).
- The change history is Django's ``LogEntry`` (the template's content type),
  its ``object_id`` scoped by the tenant's incarnation: a tenant's pages only
  ever read entries of its own incarnation, and they are deleted when its
  schema is dropped.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.contrib import admin
from django.contrib.admin.exceptions import AlreadyRegistered, NotRegistered
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.views.main import PAGE_VAR
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, PermissionDenied
from django.db import models
from django.db.models.base import ModelBase
from django.db.models.query import ModelIterable
from django.http import Http404, HttpRequest, HttpResponse

from tenancy._classes.registry import TEMPLATES
from tenancy._primitives import shared
from tenancy._primitives.markers import is_template
from tenancy._primitives.states import TenantState
from tenancy.exceptions import TenantDeleted, TenantNotReady
from tenancy.middleware import not_ready_response

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

__all__ = [
    "TenantAdminSite",
    "TenantAutocompleteJsonView",
    "TenantModelAdmin",
    "forget_dropped_tenant_history",
    "history_key",
    "site",
]

_View = TypeVar("_View", bound=Callable[..., Any])

#: Separates the tenant's incarnation from the object's pk in ``LogEntry.object_id``.
HISTORY_SEPARATOR = ":"


def history_key(tenant: AbstractTenant, pk: Any) -> str:
    """Return the ``LogEntry.object_id`` of the row ``pk`` of ``tenant``: ``<incarnation>:<pk>``."""
    return f"{tenant.incarnation}{HISTORY_SEPARATOR}{pk}"


def forget_dropped_tenant_history(sender: Any, *, incarnation: str = "", **kwargs: Any) -> None:
    """Delete the tenant admin's change history of a dropped tenant's incarnation.

    The receiver of ``tenancy.signals.tenant_dropped`` (connected at start-up when
    ``django.contrib.admin`` is installed). The drop of the source copy of a tenant
    moved to another database has the same incarnation: while a tenant of that
    incarnation exists, its history is kept.
    """
    if not incarnation or shared.tenants().filter(incarnation=incarnation).exists():
        return
    # Only the templates' entries: a shared model's string pk may look like a history key.
    templates = ContentType.objects.get_for_models(
        *TEMPLATES.values(), for_concrete_models=False
    ).values()
    LogEntry.objects.filter(
        content_type__in=list(templates), object_id__startswith=f"{incarnation}{HISTORY_SEPARATOR}"
    ).delete()


class _TenantLogIterable(ModelIterable):
    """Yield log entries with their ``object_id`` back to the row's pk (for their links)."""

    def __iter__(self) -> Iterator[Any]:
        for entry in super().__iter__():
            entry.object_id = entry.object_id.partition(HISTORY_SEPARATOR)[2]
            yield entry


def _tenant_log_entries(tenant: AbstractTenant) -> models.QuerySet[LogEntry]:
    """Return the log entries of ``tenant``'s incarnation, their ``object_id`` the rows' pks."""
    entries = LogEntry.objects.filter(
        object_id__startswith=f"{tenant.incarnation}{HISTORY_SEPARATOR}"
    )
    entries._iterable_class = _TenantLogIterable
    return entries


class TenantModelAdmin(admin.ModelAdmin):
    """What a ``ModelAdmin`` registered on a :class:`TenantAdminSite` does differently.

    The site puts it under the registered class (which may be any ``ModelAdmin``):
    inlines get the tenant's classes of their templates, the change history is
    written and read for the tenant only, and a pk that is no row of the
    tenant's is a 404. Custom admin views must be methods of the ``ModelAdmin``
    (the site calls them on the tenant's instance) and use ``self.model``, the
    tenant's class, never the template.
    """

    admin_site: TenantAdminSite

    @property
    def tenant(self) -> AbstractTenant:
        tenant = self.admin_site.tenant
        if tenant is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} of {self.model.__name__} is the template's: the "
                "tenant admin calls the views of the tenant's instance, built per request."
            )
        return tenant

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        inlines = super().get_inline_instances(request, obj)
        for inline in inlines:
            if is_template(inline.model):
                inline.model = inline.model.for_tenant(self.tenant)
                inline.opts = inline.model._meta
                inline.has_registered_model = self.admin_site.is_registered(inline.model)
        return inlines

    def get_view_on_site_url(self, obj: Any = None) -> str | None:
        # Django links to its ContentType shortcut, which finds no model for a
        # template's content type; the row's own URL is on the tenant's host.
        if obj is not None and self.view_on_site is True and hasattr(obj, "get_absolute_url"):
            return str(obj.get_absolute_url())
        return super().get_view_on_site_url(obj)

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        # Django redirects to the index with a message; a tenant admin answers as for
        # any URL of a row that is not the tenant's.
        raise Http404(f"{opts.verbose_name} with ID {unquote(object_id)!r} does not exist.")

    # -- the change history: LogEntry, scoped by the tenant's incarnation ----------------

    def _log(self, request: HttpRequest, objects: Iterable[Any], flag: int, message: Any) -> Any:
        if isinstance(message, list):
            message = json.dumps(message)
        entries = [
            LogEntry(
                user_id=cast("int", request.user.pk),
                content_type_id=ContentType.objects.get_for_model(obj, for_concrete_model=False).pk,
                object_id=history_key(self.tenant, obj.pk),
                object_repr=str(obj)[:200],
                action_flag=flag,
                change_message=message,
            )
            for obj in objects
        ]
        if len(entries) == 1:
            entries[0].save()
            return entries
        return LogEntry.objects.bulk_create(entries)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return self._log(request, [obj], ADDITION, message)[0]

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return self._log(request, [obj], CHANGE, message)[0]

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        return self._log(request, queryset, DELETION, "")

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().history_view(request, object_id, extra_context)
        context = getattr(response, "context_data", None)
        if context is None or "object" not in context:
            return response
        # Django's page listed the entries of this pk in every tenant: replace them
        # (the response is not rendered yet) with this tenant's.
        obj = context["object"]
        entries = (
            LogEntry.objects.filter(
                object_id=history_key(self.tenant, obj.pk),
                content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
            )
            .select_related()
            .order_by("action_time")
        )
        paginator = self.get_paginator(request, entries, 100)
        page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
        context["action_list"] = page
        context["page_range"] = paginator.get_elided_page_range(page.number)
        context["pagination_required"] = paginator.count > 100
        return response


class TenantAutocompleteJsonView(AutocompleteJsonView):
    """Django's autocomplete view, finding the source model among the tenant's classes
    (Django's looks it up in the global registry, where templates are not)."""

    admin_site: TenantAdminSite

    def process_request(self, request: HttpRequest) -> tuple[str, Any, Any, str]:
        term = request.GET.get("term", "")
        try:
            app_label = request.GET["app_label"]
            model_name = request.GET["model_name"]
            field_name = request.GET["field_name"]
        except KeyError as exc:
            raise PermissionDenied from exc
        sources = [
            model
            for model in self.admin_site._registry
            if (model._meta.app_label, model._meta.model_name) == (app_label, model_name.lower())
        ]
        if not sources:
            raise PermissionDenied
        try:
            source_field = sources[0]._meta.get_field(field_name)
            remote_model = source_field.remote_field.model  # type: ignore[union-attr]
        except (FieldDoesNotExist, AttributeError) as exc:
            raise PermissionDenied from exc
        try:
            model_admin = self.admin_site.get_model_admin(remote_model)
        except NotRegistered as exc:
            raise PermissionDenied from exc
        if not model_admin.get_search_fields(request):
            raise Http404(
                f"{type(model_admin).__qualname__} must have search_fields for the "
                "autocomplete_view."
            )
        to_field_name = getattr(
            source_field.remote_field, "field_name", remote_model._meta.pk.attname
        )
        to_field_name = remote_model._meta.get_field(to_field_name).attname  # type: ignore[union-attr]
        if not model_admin.to_field_allowed(request, to_field_name):
            raise PermissionDenied
        return term, model_admin, source_field, to_field_name


class TenantAdminSite(admin.AdminSite):
    """An ``AdminSite`` whose registry holds templates, served per ``request.tenant``.

    ``register(Template, SomeModelAdmin)`` as on any site. Each request gets a
    copy of the site bound to its tenant (``site.tenant``), whose registry
    holds ModelAdmin instances of the tenant's classes. Building it costs about
    17 µs per registered template (Django's ``ModelAdmin.__init__``), little
    next to rendering a page, so nothing is cached and nothing keeps an
    evicted tenant's classes alive.
    """

    #: The tenant of a copy bound to a request; None on the site itself.
    tenant: AbstractTenant | None = None

    def __init__(self, name: str = "tenant_admin") -> None:
        super().__init__(name)
        #: The ModelAdmin classes as registered, by template.
        self._admin_classes: dict[type[models.Model], type[admin.ModelAdmin]] = {}

    # -- registration --------------------------------------------------------------------

    def register(
        self,
        model_or_iterable: type[models.Model] | Iterable[type[models.Model]],
        admin_class: type[admin.ModelAdmin] | None = None,
        **options: Any,
    ) -> None:
        """Register templates (``TenantModel`` subclasses) with ``admin_class``."""
        admin_class = admin_class or admin.ModelAdmin
        if isinstance(model_or_iterable, ModelBase):
            model_or_iterable = [model_or_iterable]
        for template in model_or_iterable:
            if not is_template(template):
                raise ImproperlyConfigured(
                    f"{template.__name__} is no template (a TenantModel subclass): register "
                    "shared models on django.contrib.admin.site, not on a TenantAdminSite."
                )
            if template in self._registry:
                raise AlreadyRegistered(f"The template {template.__name__} is already registered.")
            if options:
                options["__module__"] = __name__
                admin_class = type(f"{template.__name__}Admin", (admin_class,), options)
            bound = _tenant_admin_class(admin_class)
            self._admin_classes[template] = bound
            # The template's own instance: for URLs and system checks, never a request.
            self._registry[template] = bound(template, self)

    def unregister(self, model_or_iterable: Any) -> None:
        super().unregister(model_or_iterable)
        for template in list(self._admin_classes):
            if template not in self._registry:
                del self._admin_classes[template]

    # -- the tenant ----------------------------------------------------------------------

    def has_tenant_permission(self, request: HttpRequest, tenant: AbstractTenant) -> bool:
        """Return whether ``request.user`` may administer ``tenant``'s data.

        Active staff users with the object permission ``<app_label>.change_<model>``
        of the tenant model on ``tenant``: every active superuser, and other
        staff users to whom an object-permission backend (django-guardian, or
        the project's own) grants it on this tenant. Override to use another rule.
        """
        user: Any = request.user
        opts = tenant._meta
        permission = f"{opts.app_label}.change_{opts.model_name}"
        return bool(user.is_active and user.is_staff and user.has_perm(permission, tenant))

    def has_permission(self, request: HttpRequest) -> bool:
        tenant = getattr(request, "tenant", None)
        return (
            tenant is not None
            and super().has_permission(request)
            and self.has_tenant_permission(request, tenant)
        )

    def for_tenant(self, tenant: AbstractTenant) -> TenantAdminSite:
        """Return a copy of the site bound to ``tenant``: ModelAdmins of its classes.

        Raises ``TenantNotReady`` or ``TenantDeleted`` as ``for_tenant()`` does.
        """
        bound = copy.copy(self)
        bound.tenant = tenant
        bound._registry = {}
        for template, admin_class in self._admin_classes.items():
            model = template.for_tenant(tenant)  # type: ignore[attr-defined]
            bound._registry[model] = admin_class(model, bound)
        return bound

    def _bound_view(self, request: HttpRequest, view: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``view`` of the request's tenant: methods of the site or of a
        template's ModelAdmin are called on the tenant's copy."""
        tenant = cast("AbstractTenant", request.tenant)  # type: ignore[attr-defined]
        bound = self.for_tenant(tenant)
        owner = getattr(view, "__self__", None)
        if owner is self:
            return types.MethodType(view.__func__, bound)  # type: ignore[attr-defined]
        if isinstance(owner, admin.ModelAdmin) and self._registry.get(owner.model) is owner:
            model_admin = bound._registry[owner.model.for_tenant(tenant)]
            return types.MethodType(view.__func__, model_admin)  # type: ignore[attr-defined]
        return view

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        if self.tenant is not None:
            return super().admin_view(view, cacheable)  # the tenant's copy: Django's checks

        def on_tenant(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            try:
                bound_view = self._bound_view(request, view)
                tenant_site = cast("TenantAdminSite", getattr(bound_view, "__self__", self))
                if isinstance(tenant_site, admin.ModelAdmin):
                    tenant_site = cast("TenantAdminSite", tenant_site.admin_site)
            except TenantNotReady as exc:
                return not_ready_response(request, exc.tenant)
            except TenantDeleted:
                raise Http404("This workspace no longer exists.") from None
            return tenant_site.admin_view(bound_view, cacheable)(request, *args, **kwargs)

        on_tenant.__wrapped__ = view  # type: ignore[attr-defined]
        return cast("_View", on_tenant)

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        """Refuse a request without a tenant (404) or whose tenant is not ready (503)."""
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            raise Http404("The tenant admin is served on a tenant's host only.")
        if tenant.state != TenantState.READY:
            return not_ready_response(request, tenant)
        return None

    def autocomplete_view(self, request: HttpRequest) -> HttpResponse:
        view = TenantAutocompleteJsonView.as_view(admin_site=self)
        return cast("HttpResponse", view(request))

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        refusal = self._refusal(request)
        return refusal if refusal is not None else super().login(request, extra_context)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["tenant"] = self.tenant
        if self.tenant is not None:
            # Whose data this is, in the header of every page.
            context["site_header"] = f"{context['site_header']}: {self.tenant}"
        return context

    def get_log_entries(self, request: HttpRequest) -> Any:
        if self.tenant is None:
            return LogEntry.objects.none()
        return _tenant_log_entries(self.tenant).select_related("content_type", "user")


def _tenant_admin_class(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """Return ``admin_class`` with :class:`TenantModelAdmin` just above ``ModelAdmin``
    in its MRO: the class's own methods still come first."""
    if issubclass(admin_class, TenantModelAdmin):
        return admin_class
    if admin_class is admin.ModelAdmin:
        return TenantModelAdmin
    return type(
        admin_class.__name__,
        (admin_class, TenantModelAdmin),
        {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
    )


#: The default tenant admin site: ``from tenancy.tenant_admin import site as tenant_admin``.
site = TenantAdminSite()

"""Class-based views of tenant models: ``model`` is a template, the rows are the tenant's.

Put a mixin before Django's generic view; the tenant comes from
``request.tenant`` (see :class:`tenancy.middleware.TenantMiddleware`)::

    class ProjectList(TenantObjectMixin, ListView):
        model = Project                      # a template

    class ReportCreate(TenantObjectMixin, CreateView):
        model = Report
        form_class = ReportForm              # Meta.model = Report, or none; built per tenant

``self.tenant`` is the tenant the view serves. Formsets of tenant models
are built in the view with :func:`tenancy.forms.tenant_modelformset_factory`
and :func:`tenancy.forms.tenant_inlineformset_factory` for ``self.tenant``
(see docs/views.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import Http404, HttpRequest
from django.utils.functional import cached_property

from tenancy._classes.registry import is_template, template_of
from tenancy.forms import tenant_modelform_factory

if TYPE_CHECKING:
    from tenancy.middleware import TenantRequest
    from tenancy.models import AbstractTenant, TenantModel

__all__ = ["TenantMixin", "TenantModelMixin", "TenantObjectMixin"]


class TenantMixin:
    """Give a view the tenant it serves, ``self.tenant`` (``get_tenant()``), and ``tenant``
    to templates."""

    request: HttpRequest

    @cached_property
    def tenant(self) -> AbstractTenant:
        """The tenant the view serves: what ``get_tenant()`` returns, asked once per view.

        A cached property, not set by ``setup()``: ``get_tenant()`` runs at the
        first use (in the handler, after the ``dispatch()`` of mixins placed
        before this one, such as ``LoginRequiredMixin``), then never again for
        this view instance (Django makes one per request). Its errors
        (``Http404``, ``ImproperlyConfigured``) are raised at that first use.
        """
        return self.get_tenant()

    def get_tenant(self) -> AbstractTenant:
        """Return the tenant the view serves: ``request.tenant`` unless overridden.

        Raises ``Http404`` when the request names no tenant (a page of the
        public site), ``ImproperlyConfigured`` without ``TenantMiddleware``.
        Use ``self.tenant`` to read it: this method is what computes it.
        """
        request = self.request
        try:
            tenant = cast("TenantRequest", request).tenant
        except AttributeError:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs request.tenant: add "
                "'tenancy.middleware.TenantMiddleware' to MIDDLEWARE, or override get_tenant()."
            ) from None
        if tenant is None:
            raise Http404("This page belongs to a tenant's workspace; the request names no tenant.")
        return tenant

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("tenant", self.tenant)
        return super().get_context_data(**kwargs)  # type: ignore[misc]


class TenantModelMixin(TenantMixin):
    """For views whose ``model`` is a template: the tenant's class and model forms.

    ``form_class`` may be a ``ModelForm`` of the template (see
    :mod:`tenancy.forms`) or a ``ModelForm`` without ``Meta.model``, which is
    bound to the tenant's class of ``model``; without one, a form of
    ``fields`` is built for the tenant's class.
    """

    model: type[models.Model] | None = None

    def get_model(self) -> type[models.Model]:
        """Return the tenant's class of ``model`` (a dictionary hit once cached)."""
        return self._template().for_tenant(self.tenant)

    def get_form_class(self) -> type[forms.BaseForm]:
        """Return the form class, built for the tenant when it is a model form of a template
        or of no model (then of ``model``); other forms are returned as they are."""
        form_class = getattr(self, "form_class", None)
        fields = getattr(self, "fields", None)
        if form_class is not None and fields is not None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: give either 'fields' or 'form_class', not both."
            )
        if form_class is not None:
            if not issubclass(form_class, forms.BaseModelForm):
                return form_class
            if form_class._meta.model is None:
                return tenant_modelform_factory(self.tenant, self._template(), form=form_class)
            if _is_tenant_model(form_class._meta.model):
                return tenant_modelform_factory(self.tenant, form_class)
            return form_class
        if fields is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs 'fields' or 'form_class' to build a form of "
                f"{self._template().__name__}."
            )
        return tenant_modelform_factory(self.tenant, self._template(), fields=fields)

    def _template(self) -> type[TenantModel]:
        if self.model is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} is missing a model: set model to a tenant model "
                "template (a TenantModel subclass)."
            )
        template = template_of(self.model)
        if not is_template(template):
            raise ImproperlyConfigured(
                f"{type(self).__name__}.model is {self.model!r}, which is not a tenant model "
                "template: use a TenantModel subclass, or Django's generic views alone for "
                "shared models."
            )
        return template


class TenantObjectMixin(TenantModelMixin):
    """For ``ListView``, ``DetailView``, ``CreateView``, ``UpdateView`` and ``DeleteView``
    of a template: the queryset is the tenant's rows, forms are the tenant's."""

    def get_queryset(self) -> models.QuerySet[Any]:
        """Return the tenant's rows of ``model``, in ``ordering`` when the view has one."""
        queryset = self.get_model()._default_manager.all()
        ordering = self.get_ordering() if hasattr(self, "get_ordering") else None
        if ordering:
            if isinstance(ordering, str):
                ordering = (ordering,)
            queryset = queryset.order_by(*ordering)
        return queryset


def _is_tenant_model(model: Any) -> bool:
    return isinstance(model, type) and is_template(template_of(model))

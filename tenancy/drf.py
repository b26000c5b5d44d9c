"""Django REST framework: serializers and viewsets written against templates.

Install the extra (``pip install django-tenancy[drf]``). A serializer's
``Meta.model`` and a viewset's ``model`` name a *template*; each request is
served with ``request.tenant``'s class of it, so a queryset, a created row or
a related-object look-up never reaches another tenant::

    from tenancy.drf import TenantModelSerializer, TenantModelViewSet

    class ProjectSerializer(TenantModelSerializer):
        class Meta:
            model = Project                 # the template
            fields = ["id", "name", "owner"]

    class ProjectViewSet(TenantModelViewSet):
        model = Project
        serializer_class = ProjectSerializer

    router.register("projects", ProjectViewSet)

- :class:`TenantSerializerMixin` (in :class:`TenantModelSerializer`) binds
  ``Meta.model`` to the tenant's class when the serializer builds its fields,
  taking the tenant from its context (``context["tenant"]``, else
  ``context["request"].tenant``). Nested serializers get the context of their
  parent, so nested ``TenantModelSerializer``s are bound to the same tenant;
  the querysets of related fields are the tenant's (a primary key of another
  tenant's row is "invalid pk"), and foreign keys to shared models are as usual.
- :class:`TenantViewSetMixin` (in :class:`TenantModelViewSet` and
  :class:`TenantReadOnlyModelViewSet`, and usable on any ``GenericAPIView``)
  serves ``model.for_tenant(request.tenant)``: ``get_queryset()`` is its default
  manager's rows, the serializer context carries the tenant, and a plain
  ``ModelSerializer`` whose ``Meta.model`` is a template is bound as well.

A request for a tenant that is not ready never reaches a view (the
middleware answers 503); if a view meets one all the same, ``TenantNotReady``
is no ``APIException``, so DRF lets it through to ``TenantMiddleware``, which
answers the same 503 page.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from rest_framework import serializers, viewsets

from tenancy._primitives.markers import is_template

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

__all__ = [
    "TenantModelSerializer",
    "TenantModelViewSet",
    "TenantReadOnlyModelViewSet",
    "TenantSerializerMixin",
    "TenantViewSetMixin",
    "bind_serializer_class",
]


class TenantSerializerMixin:
    """Bind a model serializer whose ``Meta.model`` is a template to its tenant's class.

    The tenant is ``context["tenant"]``, else ``context["request"].tenant``
    (a nested serializer reads its parent's context). Raises
    ``ImproperlyConfigured`` when the context has neither. Example::

        ProjectSerializer(project, context={"tenant": customer}).data
    """

    context: dict[str, Any]
    Meta: Any

    def get_tenant(self) -> AbstractTenant:
        """Return the tenant this serializer works for, from its context."""
        context = self.context
        tenant = context.get("tenant")
        if tenant is None:
            tenant = getattr(context.get("request"), "tenant", None)
        if tenant is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} serializes the template {type(self).Meta.model.__name__}"
                " and needs a tenant: pass context={'tenant': tenant}, or serve it from a "
                "view with tenancy.drf.TenantViewSetMixin behind TenantMiddleware."
            )
        return tenant

    def _bind(self) -> None:
        """Give this instance a ``Meta`` whose model is the tenant's class (once)."""
        if "Meta" in self.__dict__:
            return
        meta = type(self).Meta
        model = getattr(meta, "model", None)
        if model is not None and is_template(model):
            bound = model.for_tenant(self.get_tenant())
            meta = type("Meta", (meta,), {"model": bound, "__module__": meta.__module__})
        self.Meta = meta

    def get_fields(self) -> dict[str, Any]:
        self._bind()
        return super().get_fields()  # type: ignore[misc]

    def get_validators(self) -> list[Any]:
        self._bind()
        return super().get_validators()  # type: ignore[misc]

    def create(self, validated_data: dict[str, Any]) -> Any:
        self._bind()
        return super().create(validated_data)  # type: ignore[misc]


class TenantModelSerializer(TenantSerializerMixin, serializers.ModelSerializer):
    """A ``ModelSerializer`` whose ``Meta.model`` is a template, bound per tenant."""


@functools.cache
def bind_serializer_class(serializer_class: type) -> type:
    """Return ``serializer_class`` bound per tenant: itself if it needs no binding, else
    a subclass with :class:`TenantSerializerMixin` (made once per class).

    A ``ModelSerializer`` whose ``Meta.model`` is a template needs it; a
    ``TenantSerializerMixin`` subclass, or any other serializer, does not.
    """
    if issubclass(serializer_class, TenantSerializerMixin) or not issubclass(
        serializer_class, serializers.ModelSerializer
    ):
        return serializer_class
    meta = getattr(serializer_class, "Meta", None)
    if not is_template(getattr(meta, "model", None)):
        return serializer_class
    return type(
        serializer_class.__name__,
        (TenantSerializerMixin, serializer_class),
        {"__module__": serializer_class.__module__, "__qualname__": serializer_class.__qualname__},
    )


class _TemplateQueryset:
    """``view.queryset`` of a tenant view: names the template for DRF's routers (which
    derive a ``basename`` from ``queryset.model``); the rows come from ``get_queryset()``."""

    def __get__(self, view: Any, owner: type | None = None) -> Any:
        model = getattr(owner if view is None else type(view), "model", None)
        return None if model is None else _Stand(model)


class _Stand:
    __slots__ = ("model",)

    def __init__(self, model: type) -> None:
        self.model = model


class TenantViewSetMixin:
    """Serve a template's rows of ``request.tenant`` from a DRF generic view or viewset.

    Set ``model`` to the template. ``get_queryset()`` returns the default
    manager's rows of ``model.for_tenant(request.tenant)`` (override it and
    call ``super()`` to filter); the serializer context carries ``tenant``;
    ``get_serializer_class()`` binds a plain ``ModelSerializer`` of a template
    too (:func:`bind_serializer_class`). Raises ``Http404`` on a request that
    names no tenant, ``ImproperlyConfigured`` without ``TenantMiddleware``.
    """

    model: Any = None
    queryset: Any = _TemplateQueryset()
    request: Any

    def get_tenant(self) -> AbstractTenant:
        """Return the tenant the request is for: ``request.tenant`` unless overridden."""
        try:
            tenant = self.request.tenant
        except AttributeError:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs request.tenant: add "
                "'tenancy.middleware.TenantMiddleware' to MIDDLEWARE, or override get_tenant()."
            ) from None
        if tenant is None:
            raise Http404("This API belongs to a tenant's workspace; the request names no tenant.")
        return tenant

    def get_model(self) -> Any:
        """Return the tenant's class of ``model``."""
        if self.model is None or not is_template(self.model):
            raise ImproperlyConfigured(
                f"{type(self).__name__}.model must name a template (a TenantModel subclass), "
                f"not {self.model!r}."
            )
        return self.model.for_tenant(self.get_tenant())

    def get_queryset(self) -> Any:
        return self.get_model()._default_manager.all()

    def get_serializer_class(self) -> Any:
        return bind_serializer_class(super().get_serializer_class())  # type: ignore[misc]

    def get_serializer_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_serializer_context()  # type: ignore[misc]
        context["tenant"] = self.get_tenant()
        return context


class TenantModelViewSet(TenantViewSetMixin, viewsets.ModelViewSet):
    """A ``ModelViewSet`` of a template's rows of ``request.tenant`` (set ``model``)."""


class TenantReadOnlyModelViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """A ``ReadOnlyModelViewSet`` of a template's rows of ``request.tenant`` (set ``model``)."""

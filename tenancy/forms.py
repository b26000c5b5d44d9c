"""Model forms and formsets of tenant models: declared once on a template, built per tenant.

A form declared on a template cannot query anything by itself (a template
has no table), so ``tenant_modelform_factory(tenant, FormOrTemplate)``
builds the tenant's form class: its model is the tenant's class, and the
choices of its relation fields are the tenant's rows::

    class ReportForm(TenantModelForm):
        class Meta:
            model = Report                  # a template
            fields = ["project", "content"]

    form = tenant_modelform_factory(request.tenant, ReportForm)(request.POST)
    form.fields["project"].queryset         # the tenant's projects only

``tenant_modelformset_factory()`` and ``tenant_inlineformset_factory()`` do
the same for Django's model formsets and inline formsets: their rows, and
the rows their forms may choose, are the tenant's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.forms.models import ModelFormMetaclass

from tenancy._classes.registry import is_template, template_of
from tenancy.exceptions import TemplateModelUsed

if TYPE_CHECKING:
    from django.forms.models import ModelFormOptions

    from tenancy.models import AbstractTenant

__all__ = [
    "TenantModelForm",
    "TenantModelFormMetaclass",
    "tenant_inlineformset_factory",
    "tenant_modelform_factory",
    "tenant_modelformset_factory",
]


class TenantModelFormMetaclass(ModelFormMetaclass):
    """Accept a template as ``Meta.model``: its fields are made per tenant, not now.

    Django builds a model form's fields when the class is declared, which
    fails for a template whose relations name other models by string; the
    fields of a template's form are built by ``tenant_modelform_factory``.
    """

    # What the classes this metaclass builds have (Django's ModelFormMetaclass sets ``_meta``).
    Meta: type
    _meta: ModelFormOptions[Any]

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        meta: Any = attrs.get("Meta") or next((b.Meta for b in bases if hasattr(b, "Meta")), None)
        template: type | None = getattr(meta, "model", None)
        if template is None or not is_template(template):
            return super().__new__(mcs, name, bases, attrs)
        attrs["Meta"] = type("Meta", (meta,), {"model": None})
        form = super().__new__(mcs, name, bases, attrs)
        form.Meta = meta
        form._meta.model = template
        return form


class TenantModelForm(forms.ModelForm, metaclass=TenantModelFormMetaclass):
    """A ``ModelForm`` whose ``Meta.model`` may be a template (a ``TenantModel`` subclass).

    Build the tenant's form with :func:`tenant_modelform_factory`; the form
    of the template itself cannot be instantiated.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        template = self._meta.model
        if is_template(template):
            # The error of a template used as if it had a table, told about forms.
            error = TemplateModelUsed(template, "objects")
            name = type(self).__name__
            error.args = (
                f"{name} is a form of the tenant model template {template._meta.label} and "
                f"has no tenant: use tenant_modelform_factory(tenant, {name})(...) instead.",
            )
            raise error
        super().__init__(*args, **kwargs)


def tenant_modelform_factory(
    tenant: AbstractTenant, form_or_model: type, **kwargs: Any
) -> type[forms.ModelForm]:
    """Return a model form class of ``tenant``'s class of a template.

    ``form_or_model`` is a ``ModelForm`` whose ``Meta.model`` is a template
    (or a tenant's class of one), or the template itself; ``kwargs`` are
    those of Django's ``modelform_factory`` (``fields``, ``exclude``,
    ``widgets``, and ``form`` when a template is given, which may be a
    ``ModelForm`` without ``Meta.model``). Relation fields choose among the
    tenant's rows. Raises ``ImproperlyConfigured`` when the model is not a
    tenant model, and ``TenantNotReady`` when the tenant is not ready.
    Example::

        ProjectForm = tenant_modelform_factory(tenant, Project, fields=["name"])
        ReportForm = tenant_modelform_factory(tenant, ReportFormOfTemplate)
    """
    model, form = _model_and_form(tenant, form_or_model, kwargs, "tenant_modelform_factory")
    return forms.modelform_factory(model, form=form, **kwargs)


def tenant_modelformset_factory(
    tenant: AbstractTenant, form_or_model: type, **kwargs: Any
) -> type[forms.BaseModelFormSet]:
    """Return a model formset class of ``tenant``'s rows of a template.

    ``form_or_model`` is what :func:`tenant_modelform_factory` takes (a form
    of a template, or the template, with ``form=`` optional); ``kwargs`` are
    those of Django's ``modelformset_factory`` (``fields``, ``extra``,
    ``can_delete``, ``formset``, ...). The formset edits the tenant's rows
    (a ``queryset`` given to it must be of the tenant's classes:
    ``ValueError`` otherwise), a posted id that is not one of them is
    refused or ignored, and relation fields choose among the tenant's rows.
    Example::

        ProjectFormSet = tenant_modelformset_factory(tenant, Project, fields=["name"])
        formset = ProjectFormSet(request.POST or None)
    """
    model, form = _model_and_form(tenant, form_or_model, kwargs, "tenant_modelformset_factory")
    formset = _guarded(kwargs.pop("formset", forms.BaseModelFormSet), _TenantRows)
    return forms.modelformset_factory(model, form=form, formset=formset, **kwargs)


def tenant_inlineformset_factory(
    tenant: AbstractTenant, parent_model: type, model: type, **kwargs: Any
) -> type[forms.BaseInlineFormSet]:
    """Return an inline formset class of ``tenant``'s rows of ``model`` under one ``parent_model``.

    ``parent_model`` and ``model`` are templates (or tenant classes of them);
    ``kwargs`` are those of Django's ``inlineformset_factory`` (``form``,
    which may be a form of the template or a ``ModelForm`` without
    ``Meta.model``, ``fk_name``, ``fields``, ``extra``, ...). The formset's
    ``instance`` must be of the tenant's class of ``parent_model``, and a
    ``queryset`` of its class of ``model`` (``ValueError`` otherwise).
    Example::

        ReportFormSet = tenant_inlineformset_factory(tenant, Project, Report, fields=["content"])
        formset = ReportFormSet(request.POST or None, instance=project)
    """
    caller = "tenant_inlineformset_factory"
    parent = _tenant_class(tenant, parent_model, caller)
    child = _tenant_class(tenant, model, caller)
    formset = _guarded(kwargs.pop("formset", forms.BaseInlineFormSet), _TenantChildren)
    kwargs.setdefault("form", TenantModelForm)
    return forms.inlineformset_factory(parent, child, formset=formset, **kwargs)


def _model_and_form(
    tenant: AbstractTenant, form_or_model: type, kwargs: dict[str, Any], caller: str
) -> tuple[type[models.Model], Any]:
    """Return the tenant's class and the form to build it with; pops ``form`` from ``kwargs``."""
    if isinstance(form_or_model, type) and issubclass(form_or_model, forms.BaseModelForm):
        if "form" in kwargs:
            raise TypeError(f"{caller}() takes a form or form=, not both.")
        form: Any = form_or_model
        model = form._meta.model
        if model is None:
            name = form.__name__
            raise ImproperlyConfigured(
                f"{name} has no Meta.model: name the template, "
                f"{caller}(tenant, Template, form={name})."
            )
    else:
        form = kwargs.pop("form", TenantModelForm)
        model = form_or_model
    if not _is_tenant_model(model):
        raise ImproperlyConfigured(
            f"{caller}() needs a tenant model template (a TenantModel subclass) or a "
            f"ModelForm of one, not {form_or_model!r} (model {model!r}); use Django's own "
            "factory for shared models."
        )
    return template_of(model).for_tenant(tenant), form  # type: ignore[attr-defined]


def _is_tenant_model(model: Any) -> bool:
    return isinstance(model, type) and is_template(template_of(model))


def _tenant_class(tenant: AbstractTenant, model: Any, caller: str) -> Any:
    if not _is_tenant_model(model):
        raise ImproperlyConfigured(
            f"{caller}() needs tenant model templates (TenantModel subclasses), not "
            f"{model!r}; use Django's own factory for shared models."
        )
    return template_of(model).for_tenant(tenant)  # type: ignore[attr-defined]


def _guarded(formset: type, guard: type) -> type:
    """Return ``formset`` with ``guard`` before it (itself if it already has the guard)."""
    if issubclass(formset, guard):
        return formset
    return type(f"Tenant{formset.__name__}", (guard, formset), {"__module__": __name__})


def _check_same_tenant(model: type[models.Model], given: Any, what: str) -> None:
    """Refuse ``given`` (a queryset, a manager, an instance) unless of ``model``'s tenant."""
    other = type(given) if isinstance(given, models.Model) else given.model
    # A tenant's classes share one private app registry; other tenants' and shared
    # models are in other registries.
    if getattr(getattr(other, "_meta", None), "apps", None) is not model._meta.apps:
        raise ValueError(
            f"This formset is of one tenant's classes ({model!r}); its {what} is of "
            f"{other!r}, another tenant's class or a shared model: build the formset for "
            "the tenant whose rows it edits."
        )


class _TenantRows:
    """Refuse a ``queryset`` of another tenant (a model formset's rows are its tenant's)."""

    model: type[models.Model]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        queryset = getattr(self, "queryset", None)
        if queryset is not None:
            _check_same_tenant(self.model, queryset, "queryset")


class _TenantChildren:
    """Refuse a parent ``instance`` or a ``queryset`` of another tenant (an inline formset)."""

    model: type[models.Model]
    fk: Any

    def __init__(
        self,
        data: Any = None,
        files: Any = None,
        instance: models.Model | None = None,
        save_as_new: bool = False,
        prefix: str | None = None,
        queryset: Any = None,
        **kwargs: Any,
    ) -> None:
        if instance is not None:
            _check_same_tenant(self.fk.remote_field.model, instance, "instance")
        if queryset is not None:
            _check_same_tenant(self.model, queryset, "queryset")
        super().__init__(  # type: ignore[call-arg]  # a mixin before BaseInlineFormSet
            data, files, instance, save_as_new, prefix, queryset, **kwargs
        )

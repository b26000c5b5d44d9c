"""Model forms of tenant models: declared once on a template, built per tenant.

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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.forms.models import ModelFormMetaclass

from tenancy._classes.registry import is_template, template_of
from tenancy.exceptions import TemplateModelUsed

if TYPE_CHECKING:
    from django.forms.models import ModelFormOptions

    from tenancy.models import AbstractTenant

__all__ = ["TenantModelForm", "TenantModelFormMetaclass", "tenant_modelform_factory"]


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
    ``widgets``, and ``form`` when a template is given). Relation fields
    choose among the tenant's rows. Raises ``ImproperlyConfigured`` when the
    model is not a tenant model, and ``TenantNotReady`` when the tenant is
    not ready. Example::

        ProjectForm = tenant_modelform_factory(tenant, Project, fields=["name"])
        ReportForm = tenant_modelform_factory(tenant, ReportFormOfTemplate)
    """
    if isinstance(form_or_model, type) and issubclass(form_or_model, forms.BaseModelForm):
        if "form" in kwargs:
            raise TypeError("tenant_modelform_factory() takes a form or form=, not both.")
        form: Any = form_or_model
        model = form._meta.model
    else:
        form = kwargs.pop("form", TenantModelForm)
        model = form_or_model
    template: Any = template_of(model) if isinstance(model, type) else model
    if not is_template(template):
        raise ImproperlyConfigured(
            f"tenant_modelform_factory() needs a tenant model template (a TenantModel "
            f"subclass) or a ModelForm of one, not {form_or_model!r} (model {model!r}); "
            "use django.forms.modelform_factory() for shared models."
        )
    return forms.modelform_factory(template.for_tenant(tenant), form=form, **kwargs)

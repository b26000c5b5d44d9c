"""Model formsets and inline formsets of tenant models, and the views that use them.

Every tenant's tables have their own ids: tenant B's rows have ids that tenant
A's table also has, and ids it has not. A's formsets must edit A's rows only,
whatever ids are posted to them.
"""

import pytest
from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import RequestFactory, override_settings
from django.views.generic import FormView, UpdateView

from tenancy.forms import (
    TenantModelForm,
    tenant_inlineformset_factory,
    tenant_modelform_factory,
    tenant_modelformset_factory,
)
from tenancy.views import TenantMixin, TenantObjectMixin
from tests.routing_urls import ItemForm, ProjectForm
from tests.testapp.models import Customer, Item, Person, Project, Report, Tag

PAGES = {
    "testapp/projects_edit.html": (
        "{{ tenant.name }}:{% for f in form %}{{ f.name.value }};{% endfor %}{{ form.errors }}"
    ),
    "testapp/project_reports.html": (
        "{{ form.name.value }}:{% for f in reports %}{{ f.content.value }};{% endfor %}"
        "{{ reports.errors }}"
    ),
}


@pytest.fixture(autouse=True)
def _templates():
    templates = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", PAGES)]},
        }
    ]
    with override_settings(TEMPLATES=templates):
        yield


@pytest.fixture
def acme(make_tenant):
    """One project, "alpha", with one report; its id is also the id of a globex project."""
    tenant = make_tenant("acme")
    alpha = Project.for_tenant(tenant).objects.create(name="alpha")
    Report.for_tenant(tenant).objects.create(project=alpha, content="a1")
    return tenant


@pytest.fixture
def globex(make_tenant):
    """Three projects (ids acme's table lacks but its first), each with one report."""
    tenant = make_tenant("globex")
    for name in ("gamma", "delta", "epsilon"):
        project = Project.for_tenant(tenant).objects.create(name=name)
        Report.for_tenant(tenant).objects.create(project=project, content=f"{name} report")
    return tenant


def project_names(tenant):
    return sorted(Project.for_tenant(tenant).objects.values_list("name", flat=True))


def report_contents(tenant):
    return sorted(Report.for_tenant(tenant).objects.values_list("content", flat=True))


def formset_data(prefix, rows, initial):
    """POST data of a formset: ``rows`` are dicts of field values, the first ``initial``
    of them stand for existing objects."""
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{name}": value for name, value in row.items()})
    return data


def a_globex_id_acme_lacks(acme, globex):
    acme_ids = set(Project.for_tenant(acme).objects.values_list("pk", flat=True))
    ids = Project.for_tenant(globex).objects.values_list("pk", flat=True)
    return next(pk for pk in ids if pk not in acme_ids)


# tenant_modelformset_factory


def test_model_formset_is_of_the_tenants_class_and_edits_its_rows_only(acme, globex):
    formset_class = tenant_modelformset_factory(acme, Project, fields=["name"], extra=0)

    formset = formset_class()

    assert formset_class.model is Project.for_tenant(acme)
    assert formset.form._meta.model is Project.for_tenant(acme)
    assert [f.instance.name for f in formset] == ["alpha"]
    assert all(type(f.instance) is Project.for_tenant(acme) for f in formset)


def test_model_formset_saves_changes_and_new_rows_into_the_tenants_table(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    formset_class = tenant_modelformset_factory(acme, Project, fields=["name"])
    data = formset_data("form", [{"id": alpha.pk, "name": "omega"}, {"name": "beta"}], 1)

    formset = formset_class(data)

    assert formset.is_valid(), formset.errors
    formset.save()
    assert project_names(acme) == ["beta", "omega"]
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_model_formset_refuses_the_id_of_another_tenants_row(acme, globex):
    foreign = a_globex_id_acme_lacks(acme, globex)
    formset_class = tenant_modelformset_factory(acme, Project, fields=["name"], extra=0)

    formset = formset_class(formset_data("form", [{"id": foreign, "name": "hacked"}], 1))

    assert not formset.is_valid()
    assert "Select a valid choice" in str(formset.errors)
    assert project_names(globex) == ["delta", "epsilon", "gamma"]
    assert project_names(acme) == ["alpha"]


def test_model_formset_given_an_id_both_tenants_have_edits_its_own_tenants_row(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    assert Project.for_tenant(globex).objects.filter(pk=alpha.pk).exists()
    formset_class = tenant_modelformset_factory(acme, Project, fields=["name"], extra=0)

    formset = formset_class(formset_data("form", [{"id": alpha.pk, "name": "omega"}], 1))

    assert formset.is_valid(), formset.errors
    formset.save()
    assert project_names(acme) == ["omega"]
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_model_formset_deletes_the_tenants_row_only(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    formset_class = tenant_modelformset_factory(
        acme, Project, fields=["name"], extra=0, can_delete=True
    )
    data = formset_data("form", [{"id": alpha.pk, "name": "alpha", "DELETE": "on"}], 1)

    formset = formset_class(data)

    assert formset.is_valid(), formset.errors
    formset.save()
    assert project_names(acme) == []
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_model_formset_relation_fields_choose_among_the_tenants_rows(acme, globex):
    Tag.for_tenant(acme).objects.create(label="urgent")
    Tag.for_tenant(globex).objects.create(label="later")
    foreign = a_globex_id_acme_lacks(acme, globex)
    formset_class = tenant_modelformset_factory(acme, ItemForm, extra=1)

    form = formset_class().forms[0]
    refused = formset_class(formset_data("form", [{"project": foreign, "code": "x1"}], 0))

    assert [p.name for p in form.fields["project"].queryset] == ["alpha"]
    assert [t.label for t in form.fields["tags"].queryset] == ["urgent"]
    assert not refused.is_valid()
    assert "Select a valid choice" in str(refused.errors)
    assert not Item.for_tenant(globex).objects.exists()


def test_model_formset_refuses_a_queryset_of_another_tenant(acme, globex):
    formset_class = tenant_modelformset_factory(acme, Project, fields=["name"])

    with pytest.raises(ValueError, match="another tenant's class"):
        formset_class(queryset=Project.for_tenant(globex).objects.all())


def test_model_formset_accepts_a_queryset_of_the_tenants_rows(acme):
    Project.for_tenant(acme).objects.create(name="beta")
    formset_class = tenant_modelformset_factory(acme, Project, fields=["name"], extra=0)

    formset = formset_class(queryset=Project.for_tenant(acme).objects.filter(name="beta"))

    assert [f.instance.name for f in formset] == ["beta"]


def test_model_formset_of_a_template_with_a_form_without_a_model(acme):
    formset_class = tenant_modelformset_factory(acme, Project, form=ProjectForm, extra=1)
    data = formset_data("form", [{"name": "BETA"}], 0)

    formset = formset_class(data)

    assert issubclass(formset.form, ProjectForm)
    assert formset.is_valid(), formset.errors
    formset.save()
    assert project_names(acme) == ["alpha", "beta"]


def test_model_formset_keeps_the_factorys_keyword_arguments_and_formset_base(acme):
    class LimitedFormSet(forms.BaseModelFormSet):
        def clean(self):
            super().clean()
            if sum(1 for f in self.forms if f.has_changed()) > 1:
                raise forms.ValidationError("one change at a time")

    formset_class = tenant_modelformset_factory(
        acme,
        Project,
        fields=["name"],
        formset=LimitedFormSet,
        extra=2,
        widgets={"name": forms.Textarea},
        labels={"name": "Title"},
    )

    formset = formset_class(formset_data("form", [{"name": "x"}, {"name": "y"}], 0))

    assert issubclass(formset_class, LimitedFormSet)
    assert formset_class.extra == 2
    assert isinstance(formset.form.base_fields["name"].widget, forms.Textarea)
    assert formset.form.base_fields["name"].label == "Title"
    assert not formset.is_valid()
    assert formset.non_form_errors() == ["one change at a time"]


def test_model_formset_factory_refuses_a_shared_model_and_a_form_given_twice(acme):
    with pytest.raises(ImproperlyConfigured, match="needs a tenant model template"):
        tenant_modelformset_factory(acme, Customer, fields=["name"])
    with pytest.raises(TypeError, match="not both"):
        tenant_modelformset_factory(acme, ItemForm, form=TenantModelForm)


def test_factories_given_a_form_without_a_model_name_the_template_to_give(acme):
    with pytest.raises(ImproperlyConfigured, match=r"tenant, Template, form=ProjectForm"):
        tenant_modelform_factory(acme, ProjectForm)
    with pytest.raises(ImproperlyConfigured, match=r"tenant, Template, form=ProjectForm"):
        tenant_modelformset_factory(acme, ProjectForm)


# tenant_inlineformset_factory


def test_inline_formset_is_of_the_tenants_classes_and_the_parents_rows(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    formset_class = tenant_inlineformset_factory(acme, Project, Report, fields=["content"])

    formset = formset_class(instance=alpha)

    assert formset_class.model is Report.for_tenant(acme)
    assert formset_class.fk.remote_field.model is Project.for_tenant(acme)
    assert [f.instance.content for f in formset.initial_forms] == ["a1"]
    assert len(formset.extra_forms) == 3  # Django's default


def test_inline_formset_saves_the_parents_children_into_the_tenants_table(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    report = Report.for_tenant(acme).objects.get()
    formset_class = tenant_inlineformset_factory(acme, Project, Report, fields=["content"], extra=1)
    rows = [{"id": report.pk, "content": "a1 changed"}, {"content": "a2"}]

    formset = formset_class(formset_data("reports", rows, 1), instance=alpha)

    assert formset.is_valid(), formset.errors
    formset.save()
    assert report_contents(acme) == ["a1 changed", "a2"]
    assert {r.project_id for r in Report.for_tenant(acme).objects.all()} == {alpha.pk}
    assert report_contents(globex) == ["delta report", "epsilon report", "gamma report"]


def test_inline_formset_refuses_another_tenants_child_and_parent_ids(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    acme_ids = set(Report.for_tenant(acme).objects.values_list("pk", flat=True))
    foreign = next(
        r for r in Report.for_tenant(globex).objects.order_by("pk") if r.pk not in acme_ids
    )
    formset_class = tenant_inlineformset_factory(acme, Project, Report, fields=["content"], extra=0)
    child = {"id": foreign.pk, "content": "hacked"}
    parent = {"content": "moved", "project": foreign.project_id}

    refused_child = formset_class(formset_data("reports", [child], 1), instance=alpha)
    refused_parent = formset_class(formset_data("reports", [parent], 0), instance=alpha)

    assert not refused_child.is_valid()
    assert "Select a valid choice" in str(refused_child.errors)
    assert not refused_parent.is_valid()
    assert "did not match the parent instance" in str(refused_parent.errors)
    assert report_contents(globex) == ["delta report", "epsilon report", "gamma report"]
    assert report_contents(acme) == ["a1"]


def test_inline_formset_refuses_a_parent_or_queryset_of_another_tenant(acme, globex):
    formset_class = tenant_inlineformset_factory(acme, Project, Report, fields=["content"])
    gamma = Project.for_tenant(globex).objects.get(name="gamma")

    with pytest.raises(ValueError, match="its instance is of"):
        formset_class(instance=gamma)
    with pytest.raises(ValueError, match="its queryset is of"):
        formset_class(
            instance=Project.for_tenant(acme).objects.get(),
            queryset=Report.for_tenant(globex).objects.all(),
        )
    assert report_contents(globex) == ["delta report", "epsilon report", "gamma report"]


def test_inline_formset_without_a_parent_makes_one_of_the_tenants_class(acme):
    formset_class = tenant_inlineformset_factory(acme, Project, Report, fields=["content"])

    assert type(formset_class().instance) is Project.for_tenant(acme)


def test_inline_formset_takes_a_form_of_the_template_and_djangos_keyword_arguments(acme, globex):
    Tag.for_tenant(acme).objects.create(label="urgent")
    Tag.for_tenant(globex).objects.create(label="later")
    alpha = Project.for_tenant(acme).objects.get()

    items = tenant_inlineformset_factory(acme, Project, Item, form=ItemForm, extra=1)
    friends = tenant_inlineformset_factory(acme, Person, Person, fk_name="best_friend", fields=[])
    form = items(instance=alpha).forms[0]

    assert issubclass(items.form, ItemForm)
    assert [t.label for t in form.fields["tags"].queryset] == ["urgent"]
    assert friends.fk.name == "best_friend"
    assert friends.max_num == 1  # Django's rule for a unique foreign key


def test_inline_formset_takes_a_form_without_a_model(acme):
    class ContentForm(forms.ModelForm):
        class Meta:
            fields = ["content"]

    alpha = Project.for_tenant(acme).objects.get()
    formset_class = tenant_inlineformset_factory(acme, Project, Report, form=ContentForm, extra=1)

    formset = formset_class(formset_data("reports", [{"content": "a2"}], 0), instance=alpha)

    assert issubclass(formset.form, ContentForm)
    assert formset.form._meta.model is Report.for_tenant(acme)
    assert formset.is_valid(), formset.errors
    formset.save()
    assert report_contents(acme) == ["a1", "a2"]


def test_inline_formset_factory_refuses_shared_models(acme):
    with pytest.raises(ImproperlyConfigured, match="needs tenant model templates"):
        tenant_inlineformset_factory(acme, Customer, Report, fields=["content"])


# The views of docs/views.md.


class ProjectsEdit(TenantMixin, FormView):
    """Every project of the tenant in one formset (docs/views.md)."""

    template_name = "testapp/projects_edit.html"
    success_url = "/projects/"

    def get_form_class(self):
        return tenant_modelformset_factory(self.tenant, Project, fields=["name"], extra=1)

    def form_valid(self, form):
        form.save()
        return super().form_valid(form)


class ProjectReports(TenantObjectMixin, UpdateView):
    """A project and its reports on one page (docs/views.md)."""

    model = Project
    fields = ["name"]
    slug_field = "name"
    template_name = "testapp/project_reports.html"
    success_url = "/projects/"

    def get_reports(self):
        reports = tenant_inlineformset_factory(
            self.tenant, Project, Report, fields=["content"], extra=1
        )
        data = self.request.POST if self.request.method == "POST" else None
        return reports(data, self.request.FILES or None, instance=self.object)

    def get_context_data(self, **kwargs):
        kwargs.setdefault("reports", self.get_reports())
        return super().get_context_data(**kwargs)

    def form_valid(self, form):
        reports = self.get_reports()
        if not reports.is_valid():
            return self.form_invalid(form)
        with transaction.atomic(using=self.object._state.db):
            response = super().form_valid(form)
            reports.save()
        return response


def tenant_request(tenant, method="get", data=None):
    request = getattr(RequestFactory(), method)("/", data or {})
    request.tenant = tenant
    return request


def test_formset_view_shows_and_saves_the_tenants_rows_only(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    foreign = a_globex_id_acme_lacks(acme, globex)

    page = ProjectsEdit.as_view()(tenant_request(acme)).rendered_content
    hacked = [{"id": foreign, "name": "hacked"}]
    refused = ProjectsEdit.as_view()(tenant_request(acme, "post", formset_data("form", hacked, 1)))
    rows = [{"id": alpha.pk, "name": "omega"}, {"name": "beta"}]
    saved = ProjectsEdit.as_view()(tenant_request(acme, "post", formset_data("form", rows, 1)))

    assert page.startswith("acme:alpha;None;")
    assert saved.status_code == 302
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.rendered_content
    assert project_names(acme) == ["beta", "omega"]
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_update_view_with_an_inline_formset_saves_the_object_and_its_children(acme, globex):
    report = Report.for_tenant(acme).objects.get()
    view = ProjectReports.as_view()
    rows = [{"id": report.pk, "content": "a1 changed"}, {"content": "a2"}]
    data = {"name": "omega", **formset_data("reports", rows, 1)}

    page = view(tenant_request(acme), slug="alpha").rendered_content
    response = view(tenant_request(acme, "post", data), slug="alpha")

    assert page.startswith("alpha:a1;None;")
    assert response.status_code == 302
    assert project_names(acme) == ["omega"]
    assert report_contents(acme) == ["a1 changed", "a2"]
    assert report_contents(globex) == ["delta report", "epsilon report", "gamma report"]


def test_update_view_with_an_inline_formset_refuses_another_tenants_child(acme, globex):
    acme_ids = set(Report.for_tenant(acme).objects.values_list("pk", flat=True))
    foreign = next(
        r for r in Report.for_tenant(globex).objects.order_by("pk") if r.pk not in acme_ids
    )
    data = {"name": "omega", **formset_data("reports", [{"id": foreign.pk, "content": "x"}], 1)}

    response = ProjectReports.as_view()(tenant_request(acme, "post", data), slug="alpha")

    assert response.status_code == 200
    assert "Select a valid choice" in response.rendered_content
    assert project_names(acme) == ["alpha"]
    assert report_contents(globex) == ["delta report", "epsilon report", "gamma report"]

"""Class-based views whose model is a template, and model forms built per tenant."""

import pytest
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.test import Client, RequestFactory, override_settings
from django.views.generic import CreateView, DetailView, ListView

from tenancy.exceptions import TemplateModelUsed
from tenancy.forms import TenantModelForm, tenant_modelform_factory
from tenancy.views import TenantMixin, TenantObjectMixin
from tests.routing_urls import ItemForm, ProjectCreateWithForm, ProjectForm, ProjectList
from tests.testapp.models import Customer, Item, Project, Report, Tag

PAGES = {
    "testapp/project_list.html": (
        "{{ tenant.name }}:{% for project in project_list %}{{ project.name }};{% endfor %}"
    ),
    "testapp/project_detail.html": "{{ project.name }} of {{ tenant.name }}",
    "testapp/project_form.html": "{{ form.errors }}",
    "testapp/project_confirm_delete.html": "Delete {{ project.name }}?",
    "testapp/item_form.html": "{{ form.project }}{{ form.errors }}",
    "testapp/view_tenant.html": "{{ view.tenant.name }}",
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", PAGES)]},
    }
]


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(
        ROOT_URLCONF="tests.routing_urls",
        MIDDLEWARE=["tenancy.middleware.TenantMiddleware"],
        ALLOWED_HOSTS=[".example.com"],
        TENANCY_TENANT_RESOLVER="subdomain",
        TENANCY_BASE_DOMAIN="example.com",
        TEMPLATES=TEMPLATES,
    ):
        yield


@pytest.fixture
def acme(make_tenant):
    tenant = make_tenant("acme")
    Project.for_tenant(tenant).objects.create(name="alpha")
    return tenant


@pytest.fixture
def globex(make_tenant):
    tenant = make_tenant("globex")
    for name in ("gamma", "delta", "epsilon"):
        Project.for_tenant(tenant).objects.create(name=name)
    return tenant


def acme_client():
    return Client(HTTP_HOST="acme.example.com")


def project_names(tenant):
    return sorted(Project.for_tenant(tenant).objects.values_list("name", flat=True))


# Views.


def test_list_view_shows_the_tenants_rows_and_never_another_tenants(acme, globex):
    response = acme_client().get("/projects/")

    assert response.status_code == 200
    assert response.content == b"acme:alpha;"


def test_list_view_queryset_is_the_tenants_class(acme, globex):
    request = RequestFactory().get("/projects/")
    request.tenant = globex
    view = ProjectList()
    view.setup(request)

    assert view.get_queryset().model is Project.for_tenant(globex)
    assert [p.name for p in view.get_queryset()] == ["delta", "epsilon", "gamma"]


def test_list_view_applies_the_views_ordering(acme, globex):
    class NewestFirst(TenantObjectMixin, ListView):
        model = Project
        ordering = "-name"

    request = RequestFactory().get("/")
    request.tenant = globex
    view = NewestFirst()
    view.setup(request)

    assert [p.name for p in view.get_queryset()] == ["gamma", "epsilon", "delta"]


def test_detail_view_shows_the_tenants_row(acme):
    response = acme_client().get("/projects/alpha/")

    assert response.content == b"alpha of acme"


def test_detail_view_of_another_tenants_row_is_404(acme, globex):
    assert acme_client().get("/projects/gamma/").status_code == 404


def test_create_view_saves_into_the_tenants_table_only(acme, globex):
    response = acme_client().post("/projects/new/", {"name": "beta"})

    assert response.status_code == 302, response.content
    assert project_names(acme) == ["alpha", "beta"]
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_update_view_changes_the_tenants_row(acme, globex):
    response = acme_client().post("/projects/alpha/edit/", {"name": "omega"})

    assert response.status_code == 302, response.content
    assert project_names(acme) == ["omega"]
    assert acme_client().post("/projects/gamma/edit/", {"name": "x"}).status_code == 404


def test_delete_view_deletes_the_tenants_row(acme, globex):
    assert acme_client().get("/projects/alpha/delete/").content == b"Delete alpha?"

    response = acme_client().post("/projects/alpha/delete/")

    assert response.status_code == 302
    assert project_names(acme) == []
    assert acme_client().post("/projects/gamma/delete/").status_code == 404
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_form_class_of_a_template_offers_only_the_tenants_rows(acme, globex):
    page = acme_client().get("/items/new/").content.decode()

    assert "alpha" in page
    assert "gamma" not in page and "delta" not in page


def test_form_class_of_a_template_refuses_another_tenants_row(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()
    foreign = Project.for_tenant(globex).objects.exclude(pk=alpha.pk).first()

    refused = acme_client().post("/items/new/", {"project": foreign.pk, "code": "x1"})
    accepted = acme_client().post("/items/new/", {"project": alpha.pk, "code": "a1"})

    assert refused.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    assert accepted.status_code == 302, accepted.content
    assert [i.code for i in Item.for_tenant(acme).objects.all()] == ["a1"]
    assert not Item.for_tenant(globex).objects.exists()


# A ModelForm without Meta.model given to a view is bound to the view's tenant model.


def tenant_request(tenant, method="get", data=None):
    factory = RequestFactory(HTTP_HOST=f"{tenant.name if tenant else 'www'}.example.com")
    request = getattr(factory, method)("/", data or {})
    request.tenant = tenant
    return request


def test_form_class_without_a_model_is_a_form_of_the_tenants_class_of_the_views_model(acme):
    view = ProjectCreateWithForm()
    view.setup(tenant_request(acme))

    form = view.get_form()

    assert type(form)._meta.model is Project.for_tenant(acme)
    assert isinstance(form, ProjectForm)
    assert list(form.fields) == ["name"]


def test_create_view_with_a_form_without_a_model_saves_into_the_tenants_table(acme, globex):
    response = acme_client().post("/projects/new-with-form/", {"name": "BETA"})

    assert response.status_code == 302, response.content
    assert project_names(acme) == ["alpha", "beta"]  # the form's clean_name() ran
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_update_view_with_a_form_without_a_model_edits_the_tenants_row_only(acme, globex):
    response = acme_client().post("/projects/alpha/rename/", {"name": "Omega"})

    assert response.status_code == 302, response.content
    assert project_names(acme) == ["omega"]
    assert acme_client().post("/projects/gamma/rename/", {"name": "x"}).status_code == 404
    assert project_names(globex) == ["delta", "epsilon", "gamma"]


def test_tenant_model_form_without_a_model_is_bound_to_the_views_model_too(acme):
    class TagForm(TenantModelForm):
        class Meta:
            fields = ["label"]

    class TagCreate(TenantObjectMixin, CreateView):
        model = Tag
        form_class = TagForm
        success_url = "/"

    response = TagCreate.as_view()(tenant_request(acme, "post", {"label": "urgent"}))

    assert response.status_code == 302
    assert [t.label for t in Tag.for_tenant(acme).objects.all()] == ["urgent"]


def test_form_class_without_a_model_on_a_view_without_a_model_is_improperly_configured(acme):
    class Nowhere(TenantObjectMixin, CreateView):
        form_class = ProjectForm

    with pytest.raises(ImproperlyConfigured, match="missing a model"):
        Nowhere.as_view()(tenant_request(acme))


# view.tenant: the tenant the view serves.


def test_view_tenant_is_the_requests_tenant_once_setup_ran(acme, globex):
    view = ProjectList()
    view.setup(tenant_request(globex))

    assert view.tenant is globex


def test_view_tenant_is_what_get_tenant_returns_asked_once_per_request(acme, globex):
    calls = []

    class GlobexProjects(TenantObjectMixin, ListView):
        model = Project
        template_name = "testapp/project_list.html"

        def get_tenant(self):
            calls.append(self.request.path)
            return Customer.objects.get(name="globex")

    response = GlobexProjects.as_view()(tenant_request(acme))

    assert response.rendered_content == "globex:delta;epsilon;gamma;"
    assert calls == ["/"]


def test_templates_see_the_views_tenant(acme):
    class Page(TenantMixin, DetailView):
        template_name = "testapp/view_tenant.html"

        def get_object(self):
            return None

    response = Page.as_view()(tenant_request(acme))

    assert response.rendered_content == "acme"


def test_view_tenant_is_resolved_after_the_dispatch_of_mixins_before_it(acme):
    """LoginRequiredMixin redirects an anonymous user before get_tenant() reads the user."""

    class MyProjects(LoginRequiredMixin, TenantObjectMixin, ListView):
        model = Project

        def get_tenant(self):
            return Customer.objects.get(name=self.request.user.get_username())

    request = tenant_request(acme)
    request.user = AnonymousUser()

    response = MyProjects.as_view()(request)

    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_view_tenant_raises_http_404_at_first_use_on_a_request_without_a_tenant(db):
    view = ProjectList()
    view.setup(tenant_request(None))

    with pytest.raises(Http404, match="names no tenant"):
        view.tenant  # noqa: B018  # the attribute access is what is tested


def test_tenant_view_on_the_public_site_is_404(acme):
    assert Client(HTTP_HOST="example.com").get("/projects/").status_code == 404


def test_tenant_view_without_the_middleware_is_improperly_configured(db):
    request = RequestFactory().get("/projects/")

    with pytest.raises(ImproperlyConfigured, match="TenantMiddleware"):
        ProjectList.as_view()(request)


def test_get_tenant_hook_chooses_the_tenant(acme, globex):
    class GlobexProjects(TenantObjectMixin, ListView):
        model = Project
        template_name = "testapp/project_list.html"

        def get_tenant(self):
            return Customer.objects.get(name="globex")

    response = GlobexProjects.as_view()(RequestFactory().get("/"))

    assert response.rendered_content == "globex:delta;epsilon;gamma;"


def test_view_whose_model_is_a_shared_model_is_improperly_configured(acme):
    class Customers(TenantObjectMixin, DetailView):
        model = Customer

    request = RequestFactory().get("/")
    request.tenant = acme

    with pytest.raises(ImproperlyConfigured, match="not a tenant model template"):
        Customers.as_view()(request, pk=acme.pk)


def test_view_on_a_request_without_a_tenant_raises_404(db):
    request = RequestFactory().get("/")
    request.tenant = None

    with pytest.raises(Http404, match="names no tenant"):
        ProjectList.as_view()(request)


# The form factory.


def test_form_factory_builds_a_form_of_the_tenants_class_from_a_template(acme):
    form_class = tenant_modelform_factory(acme, Project, fields=["name"])

    assert form_class._meta.model is Project.for_tenant(acme)
    assert list(form_class.base_fields) == ["name"]


def test_relation_fields_of_the_factorys_form_query_the_tenant(acme, globex):
    Tag.for_tenant(acme).objects.create(label="urgent")
    Tag.for_tenant(globex).objects.create(label="later")

    form = tenant_modelform_factory(acme, ItemForm)()

    assert form.fields["project"].queryset.model is Project.for_tenant(acme)
    assert [p.name for p in form.fields["project"].queryset] == ["alpha"]
    assert [t.label for t in form.fields["tags"].queryset] == ["urgent"]


def test_factorys_form_saves_into_the_tenants_table(acme, globex):
    alpha = Project.for_tenant(acme).objects.get()

    form = tenant_modelform_factory(acme, ItemForm)({"project": alpha.pk, "code": "c1"})

    assert form.is_valid(), form.errors
    item = form.save()
    assert type(item) is Item.for_tenant(acme)
    assert Item.for_tenant(acme).objects.get().project == alpha


def test_plain_modelform_of_a_template_is_built_per_tenant_too(acme, globex):
    class ReportForm(forms.ModelForm):
        class Meta:
            model = Report
            fields = ["project", "content"]

    form_class = tenant_modelform_factory(globex, ReportForm)

    assert form_class._meta.model is Report.for_tenant(globex)
    assert [p.name for p in form_class().fields["project"].queryset] == [
        "delta",
        "epsilon",
        "gamma",
    ]


def test_factory_rebuilds_a_form_of_another_tenants_class_for_this_tenant(acme, globex):
    globex_form = forms.modelform_factory(Project.for_tenant(globex), fields=["name"])

    assert tenant_modelform_factory(acme, globex_form)._meta.model is Project.for_tenant(acme)


def test_factory_keeps_the_forms_declared_fields_and_kwargs(acme):
    class ProjectForm(TenantModelForm):
        motto = forms.CharField(required=False)

        class Meta:
            model = Project
            fields = ["name"]

    form_class = tenant_modelform_factory(
        acme, ProjectForm, widgets={"name": forms.Textarea}, labels={"name": "Title"}
    )

    assert list(form_class.base_fields) == ["name", "motto"]
    assert isinstance(form_class.base_fields["name"].widget, forms.Textarea)
    assert form_class.base_fields["name"].label == "Title"


def test_template_form_cannot_be_used_without_a_tenant():
    with pytest.raises(TemplateModelUsed, match=r"tenant_modelform_factory\(tenant, ItemForm\)"):
        ItemForm()


def test_factory_refuses_a_shared_model(acme):
    with pytest.raises(ImproperlyConfigured, match="not a tenant model template|needs a tenant"):
        tenant_modelform_factory(acme, Customer, fields=["name"])

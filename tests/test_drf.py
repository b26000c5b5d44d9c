"""tenancy.drf: serializers and viewsets of templates, served per request.tenant (APIClient)."""

from __future__ import annotations

from pathlib import Path

import pytest
import rest_framework
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from tenancy._classes import cache
from tenancy.exceptions import TenantNotReady
from tests.drf_urls import ProjectSerializer
from tests.testapp.models import Customer, Project, Report

DRF_TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,  # tenancy/not_ready.html
        # The browsable API's templates and tags, without rest_framework in INSTALLED_APPS.
        "DIRS": [str(Path(rest_framework.__file__).parent / "templates")],
        "OPTIONS": {"libraries": {"rest_framework": "rest_framework.templatetags.rest_framework"}},
    }
]


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(
        ROOT_URLCONF="tests.drf_urls",
        MIDDLEWARE=["tenancy.middleware.TenantMiddleware"],
        ALLOWED_HOSTS=["*"],
        TENANCY_TENANT_RESOLVER="subdomain",
        TENANCY_BASE_DOMAIN="example.com",
        TEMPLATES=DRF_TEMPLATES,
    ):
        yield


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def two(make_tenant):
    """Tenant "a" with three projects (pks 1-3) and a report, tenant "b" with one."""
    a, b = make_tenant("h15drfa"), make_tenant("h15drfb")
    projects = Project.for_tenant(a).objects
    for name in ("alpha", "beta", "gamma"):
        projects.create(name=name)
    Report.for_tenant(a).objects.create(project=projects.get(name="alpha"), content="a's")
    Project.for_tenant(b).objects.create(name="bravo")
    return a, b


def host(tenant):
    return {"HTTP_HOST": f"{tenant.name}.example.com"}


def test_a_list_is_the_requests_tenants_rows_with_nested_rows_of_another_template(api, two):
    a, b = two
    response = api.get("/api/projects/?ordering=name", **host(a))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"]  # two per page
    alpha = Project.for_tenant(a).objects.get(name="alpha")
    assert body["results"][0] == {
        "id": alpha.pk,
        "name": "alpha",
        "owner": None,
        "reports": [{"id": alpha.reports.get().pk, "project": alpha.pk, "content": "a's"}],
    }
    assert [p["name"] for p in api.get("/api/projects/", **host(b)).json()["results"]] == ["bravo"]


def test_search_ordering_and_pagination_work_on_the_tenants_rows(api, two):
    a, _ = two
    found = api.get("/api/projects/?search=mm", **host(a)).json()
    assert [p["name"] for p in found["results"]] == ["gamma"]
    page2 = api.get("/api/projects/?ordering=-name&page=2", **host(a)).json()
    assert [p["name"] for p in page2["results"]] == ["alpha"] and page2["previous"]


def test_a_created_row_goes_into_the_requests_tenant_only(api, two):
    a, b = two
    response = api.post("/api/projects/", {"name": "new"}, format="json", **host(b))
    assert response.status_code == 201, response.content
    assert Project.for_tenant(b).objects.filter(name="new").exists()
    assert not Project.for_tenant(a).objects.filter(name="new").exists()


def test_a_related_pk_of_another_tenants_row_is_refused_and_nothing_is_written(api, two):
    a, b = two
    gamma = Project.for_tenant(a).objects.get(name="gamma")
    assert not Project.for_tenant(b).objects.filter(pk=gamma.pk).exists()
    response = api.post(
        "/api/reports/", {"project": gamma.pk, "content": "x"}, format="json", **host(b)
    )
    assert response.status_code == 400
    assert "Invalid pk" in response.json()["project"][0]
    assert not Report.for_tenant(b).objects.exists()
    assert Report.for_tenant(a).objects.count() == 1


def test_a_foreign_key_to_a_shared_model_is_written_and_read(api, two):
    _, b = two
    user = User.objects.create(username="h15drfowner")
    response = api.post(
        "/api/projects/", {"name": "owned", "owner": user.pk}, format="json", **host(b)
    )
    assert response.status_code == 201, response.content
    assert response.json()["owner"] == user.pk
    assert Project.for_tenant(b).objects.get(name="owned").owner == user
    missing = api.post("/api/projects/", {"name": "x", "owner": 10**9}, format="json", **host(b))
    assert missing.status_code == 400 and "owner" in missing.json()


def test_another_tenants_row_cannot_be_read_changed_or_deleted_by_its_pk(api, two):
    a, b = two
    gamma = Project.for_tenant(a).objects.get(name="gamma")
    url = f"/api/projects/{gamma.pk}/"
    assert api.get(url, **host(b)).status_code == 404
    assert api.patch(url, {"name": "taken"}, format="json", **host(b)).status_code == 404
    assert api.delete(url, **host(b)).status_code == 404
    assert Project.for_tenant(a).objects.get(pk=gamma.pk).name == "gamma"
    assert api.patch(url, {"name": "gamma2"}, format="json", **host(a)).status_code == 200
    assert api.delete(url, **host(a)).status_code == 204
    assert not Project.for_tenant(a).objects.filter(pk=gamma.pk).exists()


def test_a_plain_model_serializer_of_a_template_is_bound_by_the_viewset(api, two):
    a, _ = two
    response = api.get("/api/plain-projects/", **host(a))
    assert response.status_code == 200
    assert sorted(p["name"] for p in response.json()) == ["alpha", "beta", "gamma"]


def test_the_browsable_api_renders_the_tenants_rows_and_form(api, two):
    a, _ = two
    response = api.get("/api/projects/", HTTP_ACCEPT="text/html", **host(a))
    assert response.status_code == 200
    html = response.content.decode()
    assert "alpha" in html and "bravo" not in html
    assert "<form" in html and 'name="name"' in html  # the POST form of the tenant's class
    assert api.get("/api/", HTTP_ACCEPT="text/html", **host(a)).status_code == 200


def test_a_view_that_finds_its_tenant_elsewhere_gives_it_to_its_serializers_with_depth(api, two):
    assert two  # tenants "h15drfa" (a report) and "h15drfb" (none)
    response = api.get("/staff/h15drfa/reports/", HTTP_HOST="example.com")  # no request.tenant
    assert response.status_code == 200, response.content
    (report,) = response.json()
    assert report["content"] == "a's"
    assert report["project"]["name"] == "alpha"  # depth 1: the tenant's project, nested
    assert api.get("/staff/h15drfb/reports/", HTTP_HOST="example.com").json() == []
    assert api.get("/staff/nobody/reports/", HTTP_HOST="example.com").status_code == 404


def test_the_router_names_routes_after_the_template():
    assert reverse("project-list") == "/api/projects/"
    assert reverse("report-detail", args=[1]) == "/api/reports/1/"


def test_a_tenant_that_is_not_ready_gets_the_503_page(api, db):
    Customer._base_manager.bulk_create([Customer(name="h15drfpending", db_schema="tenant_h15x")])
    response = api.get("/api/projects/", HTTP_HOST="h15drfpending.example.com")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"Setting up your workspace" in response.content


def test_a_view_meeting_a_tenant_that_is_not_ready_gets_the_503_page_not_a_drf_error(
    api, two, monkeypatch
):
    a, _ = two

    def not_ready(template, tenant):
        raise TenantNotReady(tenant, "provisioning")

    monkeypatch.setattr(cache, "model_for", not_ready)
    response = api.get("/api/projects/", **host(a))
    assert response.status_code == 503
    assert b"Setting up your workspace" in response.content


def test_a_request_naming_no_tenant_gets_404(api, db):
    assert api.get("/api/projects/", HTTP_HOST="example.com").status_code == 404


def test_a_serializer_takes_its_tenant_from_its_context_or_refuses_without_one(two):
    a, _ = two
    alpha = Project.for_tenant(a).objects.get(name="alpha")
    data = ProjectSerializer(alpha, context={"tenant": a}).data
    assert data["name"] == "alpha" and len(data["reports"]) == 1
    serializer = ProjectSerializer(data={"name": "direct"}, context={"tenant": a})
    assert serializer.is_valid(), serializer.errors
    assert type(serializer.save()) is Project.for_tenant(a)
    with pytest.raises(ImproperlyConfigured, match=r"context=\{'tenant': tenant\}"):
        _ = ProjectSerializer(data={"name": "x"}).fields

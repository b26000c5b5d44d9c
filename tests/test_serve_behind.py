"""Tenants behind the code: served (``TENANCY_SERVE_BEHIND``, the default) or the 503 page.

A tenant is behind when its row's ``migrations_digest`` is not the running
migration plan's and it has no more migrations applied than the plan holds,
as between a deploy and ``tenancy_migrate``. The rows are made behind here by
writing an older digest and count on them, which is all the middleware reads.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings

from tenancy import checks
from tenancy._migrating.plan import plan
from tenancy.middleware import TenantMiddleware
from tests.testapp.models import Customer

ROUTING = {
    "ROOT_URLCONF": "tests.routing_urls",
    "MIDDLEWARE": ["tenancy.middleware.TenantMiddleware"],
    "ALLOWED_HOSTS": ["*"],
    "TENANCY_TENANT_RESOLVER": "subdomain",
    "TENANCY_BASE_DOMAIN": "example.com",
}
APP_TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
NAME = "h14behind"


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(**ROUTING, TEMPLATES=APP_TEMPLATES):
        yield


def get(host=f"{NAME}.example.com"):
    return Client().get("/whoami/", HTTP_HOST=host)


def make_behind(tenant, *, applied_delta=-1):
    """Write on the row what a tenant migrated by the code before this deploy has."""
    Customer.objects.filter(pk=tenant.pk).update(
        migrations_digest="0" * 32, migrations_applied=len(plan().keys) + applied_delta
    )


@pytest.fixture
def behind(make_tenant):
    tenant = make_tenant(NAME)
    make_behind(tenant)
    return tenant


def test_a_behind_tenant_is_served_by_default(behind):
    response = get()

    assert response.status_code == 200
    assert response.content == f"tenant={NAME}".encode()


def test_a_behind_tenant_gets_the_503_updating_page_when_not_served_behind(behind):
    with override_settings(TENANCY_SERVE_BEHIND=False):
        response = get()

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"Updating your workspace" in response.content
    assert b"Setting up" not in response.content


def test_a_behind_tenant_gets_the_built_in_updating_page_without_template_engines(behind):
    with override_settings(TENANCY_SERVE_BEHIND=False, TEMPLATES=[]):
        response = get()

    assert response.status_code == 503
    assert b"<h1>Updating your workspace</h1>" in response.content


def test_a_behind_tenant_is_served_again_once_tenancy_migrate_has_migrated_it(behind):
    with override_settings(TENANCY_SERVE_BEHIND=False):
        assert get().status_code == 503
        call_command("tenancy_migrate", "--inline", verbosity=0)
        response = get()

    behind.refresh_from_db()
    assert behind.migrations_digest == plan().digest
    assert response.status_code == 200
    assert response.content == f"tenant={NAME}".encode()


def test_a_current_tenant_is_served_with_no_query_more(make_tenant, django_assert_num_queries):
    make_tenant(NAME)

    with override_settings(TENANCY_SERVE_BEHIND=False), django_assert_num_queries(1):
        response = get()

    assert response.status_code == 200


def test_a_behind_tenant_costs_no_query_more_to_refuse(behind, django_assert_num_queries):
    with override_settings(TENANCY_SERVE_BEHIND=False), django_assert_num_queries(1):
        assert get().status_code == 503


def test_a_tenant_migrated_by_newer_code_is_served_during_a_rolling_deploy(make_tenant):
    tenant = make_tenant(NAME)
    make_behind(tenant, applied_delta=+1)  # another digest, more migrations than this code

    with override_settings(TENANCY_SERVE_BEHIND=False):
        assert get().status_code == 200


def test_for_tenant_still_serves_a_behind_tenants_classes(behind):
    from tests.testapp.models import Project

    behind.refresh_from_db()
    with override_settings(TENANCY_SERVE_BEHIND=False):
        Project.for_tenant(behind).objects.create(name="task work")
        assert Project.for_tenant(behind).objects.count() == 1


def test_the_async_middleware_refuses_a_behind_tenant_too(behind):
    async def view(request):
        return HttpResponse("ok")

    middleware = TenantMiddleware(view)
    request = RequestFactory().get("/", HTTP_HOST=f"{NAME}.example.com")
    with override_settings(TENANCY_SERVE_BEHIND=False):
        # async_to_sync: the row is read on this thread, on the test's connection.
        response = async_to_sync(middleware)(request)

    assert response.status_code == 503
    assert b"Updating your workspace" in response.content


@pytest.mark.parametrize("value", ["no", 0, None])
def test_serve_behind_must_be_a_bool(behind, value):
    with override_settings(TENANCY_SERVE_BEHIND=value):
        (error,) = checks.check_serve_behind()
        with pytest.raises(ImproperlyConfigured, match="TENANCY_SERVE_BEHIND must be True or"):
            get()

    assert error.id == "tenancy.E014"
    assert "expand/contract" in error.hint


def test_serve_behind_check_passes_a_bool():
    for value in (True, False):
        with override_settings(TENANCY_SERVE_BEHIND=value):
            assert checks.check_serve_behind() == []

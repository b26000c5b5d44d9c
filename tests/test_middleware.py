"""TenantMiddleware: request.tenant from the host or a header, 404 and 503 pages."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpResponse
from django.test import Client, RequestFactory, override_settings

from tenancy.exceptions import TenantNotReady
from tenancy.middleware import TenantMiddleware
from tests.testapp.models import Customer, Project

ROUTING = {
    "ROOT_URLCONF": "tests.routing_urls",
    "MIDDLEWARE": ["tenancy.middleware.TenantMiddleware"],
    "ALLOWED_HOSTS": ["*"],
    "TENANCY_TENANT_RESOLVER": "subdomain",
    "TENANCY_BASE_DOMAIN": "example.com",
}
APP_TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(**ROUTING, TEMPLATES=APP_TEMPLATES):
        yield


@pytest.fixture
def client():
    return Client()


def get(client, host, path="/whoami/", headers=None):
    return client.get(path, HTTP_HOST=host, headers=headers)


def pending_tenant(name="setup"):
    """A tenant nobody provisions (inserted as raw SQL would): it stays pending."""
    Customer._base_manager.bulk_create([Customer(name=name, db_schema=f"tenant_{name}")])
    return Customer.objects.get(name=name)


def failed_tenant(name="broken"):
    Customer._base_manager.bulk_create(
        [
            Customer(
                name=name,
                db_schema=f"tenant_{name}",
                state="failed",
                last_error='psycopg2.errors.DiskFull: could not extend file "base/16384/2619"',
            )
        ]
    )
    return Customer.objects.get(name=name)


def middleware_of(view=lambda request: HttpResponse("ok")):
    return TenantMiddleware(view)


# Custom resolvers named by dotted path in the tests below.


def tenant_from_query(request):
    name = request.GET.get("tenant")
    return Customer.objects.get(name=name) if name else None


_kept_across_requests = {}


def tenant_kept_across_requests(request):
    return _kept_across_requests.get("tenant")


# Subdomain (the default resolver).


def test_subdomain_under_the_base_domain_names_the_tenant(client, tenant):
    response = get(client, "acme.example.com")

    assert response.status_code == 200
    assert response.content == b"tenant=acme"
    assert response.wsgi_request.tenant == tenant


def test_subdomain_ignores_the_port_and_the_case_of_the_host(client, tenant):
    assert get(client, "ACME.Example.com:8000").content == b"tenant=acme"


def test_label_directly_under_the_base_domain_names_the_tenant(client, tenant):
    assert get(client, "www.acme.example.com").content == b"tenant=acme"


@pytest.mark.parametrize("host", ["example.com", "www.example.com", "elsewhere.org", "localhost"])
def test_host_without_a_tenant_part_passes_through_with_no_tenant(client, db, host):
    response = get(client, host)

    assert response.status_code == 200
    assert response.content == b"tenant=None"


def test_public_subdomains_are_configurable(client, make_tenant):
    make_tenant("www")
    assert get(client, "www.example.com").content == b"tenant=None"
    with override_settings(TENANCY_PUBLIC_SUBDOMAINS=["app"]):
        assert get(client, "www.example.com").content == b"tenant=www"
        assert get(client, "app.example.com").content == b"tenant=None"


def test_unknown_subdomain_is_a_404(client, db):
    assert get(client, "ghost.example.com").status_code == 404


def test_unknown_subdomain_404_names_the_tenant_and_the_host(db):
    request = RequestFactory().get("/", HTTP_HOST="ghost.example.com")

    with pytest.raises(Http404, match=r"No tenant .*'ghost'.*ghost\.example\.com"):
        middleware_of()(request)


def test_subdomain_resolver_without_a_base_domain_is_improperly_configured(db):
    request = RequestFactory().get("/", HTTP_HOST="acme.example.com")

    with (
        override_settings(TENANCY_BASE_DOMAIN=None),
        pytest.raises(ImproperlyConfigured, match="TENANCY_BASE_DOMAIN"),
    ):
        middleware_of()(request)


def test_subdomain_is_looked_up_with_get_by_natural_key_when_the_manager_has_one(
    client, tenant, monkeypatch
):
    asked = []

    def get_by_natural_key(key):
        asked.append(key)
        return Customer.objects.get(db_schema=f"tenant_{key}")

    monkeypatch.setattr(
        Customer._default_manager, "get_by_natural_key", get_by_natural_key, raising=False
    )
    with override_settings(TENANCY_TENANT_LOOKUP_FIELD="no_such_field"):
        assert get(client, "acme.example.com").content == b"tenant=acme"
    assert asked == ["acme"]


def test_lookup_field_names_the_field_matched_against_the_key(client, tenant):
    with override_settings(
        TENANCY_TENANT_RESOLVER="header", TENANCY_TENANT_LOOKUP_FIELD="db_schema"
    ):
        assert (
            get(client, "example.com", headers={"X-Tenant": tenant.db_schema}).content
            == b"tenant=acme"
        )
        assert get(client, "example.com", headers={"X-Tenant": "acme"}).status_code == 404


def test_lookup_field_the_tenant_model_lacks_is_improperly_configured(db):
    request = RequestFactory().get("/", HTTP_HOST="acme.example.com")

    with (
        override_settings(TENANCY_TENANT_LOOKUP_FIELD="slug"),
        pytest.raises(ImproperlyConfigured, match="testapp.Customer has no field 'slug'"),
    ):
        middleware_of()(request)


# Full domain.


@override_settings(TENANCY_TENANT_RESOLVER="domain", TENANCY_DOMAIN_FIELD="name")
def test_domain_resolver_matches_the_full_host_against_the_domain_field(client, make_tenant):
    shop = make_tenant("shop.example.org")
    make_tenant("acme")

    response = get(client, "shop.example.org:443")

    assert response.content == b"tenant=shop.example.org"
    assert response.wsgi_request.tenant == shop


@override_settings(TENANCY_TENANT_RESOLVER="domain", TENANCY_DOMAIN_FIELD="name")
def test_domain_resolver_404s_an_unknown_domain_and_passes_the_base_domain(client, tenant):
    assert get(client, "unknown.example.org").status_code == 404
    assert get(client, "acme.example.com").status_code == 404
    assert get(client, "example.com").content == b"tenant=None"
    assert get(client, "www.example.com").content == b"tenant=None"


# Header.


@override_settings(TENANCY_TENANT_RESOLVER="header")
def test_header_names_the_tenant(client, tenant):
    response = get(client, "api.example.net", headers={"X-Tenant": "acme"})

    assert response.content == b"tenant=acme"
    assert "X-Tenant" in response["Vary"]


@override_settings(TENANCY_TENANT_RESOLVER="header", TENANCY_TENANT_HEADER="X-Workspace")
def test_header_name_is_configurable_and_a_missing_header_means_no_tenant(client, tenant):
    assert get(client, "api.example.net", headers={"X-Workspace": "acme"}).content == b"tenant=acme"
    assert get(client, "api.example.net", headers={"X-Tenant": "acme"}).content == b"tenant=None"
    assert get(client, "api.example.net", headers={"X-Workspace": "ghost"}).status_code == 404


# Custom resolver.


@override_settings(TENANCY_TENANT_RESOLVER="tests.test_middleware.tenant_from_query")
def test_custom_resolver_named_by_dotted_path_finds_the_tenant(client, tenant):
    assert get(client, "anything.test", "/whoami/?tenant=acme").content == b"tenant=acme"
    assert get(client, "anything.test", "/whoami/").content == b"tenant=None"


@override_settings(TENANCY_TENANT_RESOLVER="tests.test_middleware.tenant_kept_across_requests")
def test_custom_resolvers_stale_not_ready_tenant_is_read_again(client, tenant):
    stale = Customer.objects.get(pk=tenant.pk)
    stale.state = "pending"
    _kept_across_requests["tenant"] = stale
    try:
        response = get(client, "anything.test")
    finally:
        _kept_across_requests.clear()

    assert response.status_code == 200
    assert response.content == b"tenant=acme"


def test_unknown_resolver_name_is_improperly_configured(db):
    request = RequestFactory().get("/", HTTP_HOST="acme.example.com")

    with (
        override_settings(TENANCY_TENANT_RESOLVER="cookie"),
        pytest.raises(ImproperlyConfigured, match="TENANCY_TENANT_RESOLVER"),
    ):
        middleware_of()(request)


# Tenants that are not ready.


def test_pending_tenant_gets_503_setting_up_your_workspace_with_retry_after(client, db):
    pending_tenant("setup")

    response = get(client, "setup.example.com")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "Setting up your workspace" in response.content.decode()
    assert [t.name for t in response.templates] == ["tenancy/not_ready.html"]
    assert "no-store" in response["Cache-Control"]


@override_settings(TENANCY_RETRY_AFTER=30)
def test_retry_after_is_configurable_and_the_page_reloads_after_it(client, db):
    pending_tenant("setup")

    response = get(client, "setup.example.com")

    assert response["Retry-After"] == "30"
    assert '<meta http-equiv="refresh" content="30">' in response.content.decode()


def test_failed_tenant_gets_503_saying_it_could_not_be_set_up_without_the_error(client, db):
    failed_tenant("broken")

    response = get(client, "broken.example.com")
    page = response.content.decode()

    assert response.status_code == 503
    assert "could not be set up" in page
    assert "DiskFull" not in page and "16384" not in page
    assert not response.has_header("Retry-After")


@override_settings(TEMPLATES=[])
def test_not_ready_page_falls_back_to_a_built_in_page_without_template_engines(client, db):
    pending_tenant("setup")
    failed_tenant("broken")

    setting_up = get(client, "setup.example.com")
    failed = get(client, "broken.example.com")

    assert setting_up.status_code == 503 and setting_up["Retry-After"] == "5"
    assert "<h1>Setting up your workspace</h1>" in setting_up.content.decode()
    assert failed.status_code == 503
    assert "could not be set up" in failed.content.decode()
    assert "DiskFull" not in failed.content.decode()


def test_project_template_overrides_the_not_ready_page(client, db, tmp_path):
    (tmp_path / "tenancy").mkdir()
    (tmp_path / "tenancy" / "not_ready.html").write_text(
        "{{ tenant.name }}: {% if failed %}never{% else %}in {{ retry_after }}s{% endif %}"
    )
    pending_tenant("setup")
    failed_tenant("broken")
    templates = [{**APP_TEMPLATES[0], "DIRS": [tmp_path]}]

    with override_settings(TEMPLATES=templates):
        setting_up = get(client, "setup.example.com")
        failed = get(client, "broken.example.com")

    assert setting_up.status_code == 503
    assert setting_up.content == b"setup: in 5s"
    assert failed.content == b"broken: never"


def test_view_using_a_tenant_that_is_not_ready_gets_the_503_page(db):
    tenant = pending_tenant("setup")
    request = RequestFactory().get("/", HTTP_HOST="example.com")

    def view(request):
        return HttpResponse(Project.for_tenant(tenant).objects.count())

    with pytest.raises(TenantNotReady) as raised:
        view(request)
    response = middleware_of(view).process_exception(request, raised.value)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"


@pytest.mark.parametrize("value", [-1, "5", 2.5])
def test_retry_after_must_be_whole_seconds(db, value):
    pending_tenant("setup")

    with (
        override_settings(TENANCY_RETRY_AFTER=value),
        pytest.raises(ImproperlyConfigured, match="TENANCY_RETRY_AFTER"),
    ):
        middleware_of()(RequestFactory().get("/", HTTP_HOST="setup.example.com"))


# Cost.


def test_ready_tenant_costs_one_query_per_request_and_its_classes_are_cached(
    client, tenant, django_assert_num_queries
):
    Project.for_tenant(tenant).objects.create(name="first")

    with django_assert_num_queries(1):
        get(client, "acme.example.com")
    with django_assert_num_queries(2):
        response = get(client, "acme.example.com", "/project-names/")

    assert response.content == b"first"

"""The async side: afor_tenant(), for_tenant() in async code, await_until_ready(), the
async ORM on tenant classes, and the middleware under ASGI.

pytest-asyncio is not a dependency of the suite: each async test body runs in an
event loop of its own through asgiref's ``async_to_sync`` (:func:`in_event_loop`),
as Django runs async views. Its ``sync_to_async`` calls then run in the test's
thread, on the test's database connection and transaction.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.asgi import get_asgi_application
from django.core.exceptions import SynchronousOnlyOperation
from django.core.handlers.asgi import ASGIHandler
from django.http import Http404, HttpResponse
from django.test import RequestFactory, override_settings

import tenancy
from tenancy import lifecycle
from tenancy._classes import cache
from tenancy.auth import TenantAuthenticationMiddleware
from tenancy.exceptions import TenancyError, TenantNotCached, TenantNotReady
from tenancy.middleware import TenantMiddleware
from tenancy.models import TenantState
from tests.conftest import drop_all_tenant_storage
from tests.testapp.models import Customer, Project, Report

ROUTING = {
    "ROOT_URLCONF": "tests.async_urls",
    "MIDDLEWARE": ["tenancy.middleware.TenantMiddleware"],
    "ALLOWED_HOSTS": ["*"],
    "TENANCY_TENANT_RESOLVER": "subdomain",
    "TENANCY_BASE_DOMAIN": "example.com",
    "TEMPLATES": [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
}


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(**ROUTING):
        yield


def in_event_loop(test):
    """Run an async test function in an event loop, as Django runs an async view."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return async_to_sync(test)(*args, **kwargs)

    return run


def pending(name):
    """A tenant nobody provisions (inserted as raw SQL would): it stays pending."""
    Customer._base_manager.bulk_create([Customer(name=name, db_schema=f"tenant_{name}")])
    return Customer.objects.get(name=name)


def failed(name, error="disk full"):
    Customer._base_manager.bulk_create(
        [Customer(name=name, db_schema=f"tenant_{name}", state="failed", last_error=error)]
    )
    return Customer.objects.get(name=name)


@pytest.fixture
def ready(make_tenant):
    return make_tenant("aioready")


async def ok(request):
    return HttpResponse(f"tenant={request.tenant}")


#: Django's ASGI handler runs each request's synchronous code in a thread of its own
#: (``ThreadSensitiveContext``), on a database connection of its own, which it closes
#: when the request finishes: what a test writes for an ASGI request must be committed.
committed = pytest.mark.django_db(transaction=True)


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes


def get(path, host, query=""):
    """GET ``path`` from the project's ASGI application (its settings' middleware and URLs)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def exchange():
        communicator = ApplicationCommunicator(get_asgi_application(), scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(10)
        content, more = b"", True
        while more:
            message = await communicator.receive_output(10)
            content += message.get("body", b"")
            more = message.get("more_body", False)
        await communicator.wait(10)
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return Answer(start["status"], headers, content)

    return async_to_sync(exchange)()


# afor_tenant()


def test_afor_tenant_of_a_cached_tenant_is_the_cached_class_without_a_query(
    ready, django_assert_num_queries
):
    cached = Project.for_tenant(ready)

    with django_assert_num_queries(0):
        assert async_to_sync(Project.afor_tenant)(ready) is cached


def test_afor_tenant_on_a_miss_reads_the_row_once_and_fills_the_cache(
    ready, django_assert_num_queries
):
    tenancy.clear_cache()

    @in_event_loop
    async def for_tenant_in_async_code():
        return Project.for_tenant(ready)

    with django_assert_num_queries(1):
        TenantProject = async_to_sync(Project.afor_tenant)(ready)
    assert cache.cached_schemas() == ["tenant_aioready"]
    with django_assert_num_queries(0):
        assert for_tenant_in_async_code() is TenantProject  # now a hit


def test_afor_tenant_reads_a_stale_pending_instance_again_and_serves_it(ready):
    stale = Customer.objects.get(pk=ready.pk)
    stale.state = TenantState.PENDING  # as read before the worker finished

    @in_event_loop
    async def scenario():
        TenantProject = await Project.afor_tenant(stale)
        return await TenantProject.objects.acount()

    assert scenario() == 0
    assert stale.state == TenantState.READY


def test_afor_tenant_refuses_a_pending_tenant_with_tenant_not_ready(db):
    tenant = pending("aiopending")

    with pytest.raises(TenantNotReady, match="not ready"):
        async_to_sync(Project.afor_tenant)(tenant)


def test_afor_tenant_refuses_what_is_not_a_tenant(db):
    with pytest.raises(TypeError, match="afor_tenant"):
        async_to_sync(Project.afor_tenant)("aioready")


# for_tenant() in async code


def test_for_tenant_in_async_code_serves_a_cached_ready_tenant_without_a_query(
    ready, django_assert_num_queries
):
    cached = Project.for_tenant(ready)

    @in_event_loop
    async def scenario():
        return Project.for_tenant(ready), Report.for_tenant(ready)

    with django_assert_num_queries(0):
        project, report = scenario()
    assert project is cached and report is Report.for_tenant(ready)


def test_for_tenant_in_async_code_on_a_pending_tenant_raises_tenant_not_ready_unqueried(
    db, django_assert_num_queries
):
    tenant = pending("aiopending")

    @in_event_loop
    async def scenario():
        with pytest.raises(TenantNotReady) as raised:
            Project.for_tenant(tenant)
        return raised.value

    with django_assert_num_queries(0):
        error = scenario()
    assert error.tenant is tenant and error.state == "pending"
    assert not isinstance(error, SynchronousOnlyOperation)


def test_for_tenant_in_async_code_on_an_uncached_tenant_says_to_await_afor_tenant(
    ready, django_assert_num_queries
):
    tenancy.clear_cache()

    @in_event_loop
    async def scenario():
        with pytest.raises(
            TenantNotCached, match=r"await Project\.afor_tenant\(tenant\)"
        ) as raised:
            Project.for_tenant(ready)
        return raised.value

    with django_assert_num_queries(0):
        error = scenario()
    # Handlers of Django's error, and of the library's, still match it.
    assert isinstance(error, SynchronousOnlyOperation) and isinstance(error, TenancyError)
    assert error.tenant is ready
    assert cache.cached_schemas() == []


def test_for_tenant_in_sync_code_still_reads_the_row_on_a_miss(ready):
    tenancy.clear_cache()
    assert Project.for_tenant(ready).objects.count() == 0


# await_until_ready()


@pytest.mark.django_db(transaction=True)
def test_await_until_ready_returns_once_the_tenant_is_provisioned_meanwhile(make_tenant):
    tenant = pending("aiolater")

    @in_event_loop
    async def scenario():
        async def provision_soon():
            await asyncio.sleep(0.2)
            await sync_to_async(lifecycle.provision_tenant)(tenant.pk)

        waited, _ = await asyncio.gather(tenant.await_until_ready(timeout=30), provision_soon())
        return waited

    assert scenario() is tenant
    assert tenant.state == TenantState.READY and tenant.incarnation
    assert Project.for_tenant(tenant).objects.count() == 0


def test_await_until_ready_of_a_ready_tenant_returns_it_at_once(ready):
    assert async_to_sync(ready.await_until_ready)(timeout=1) is ready


def test_await_until_ready_times_out_with_tenant_not_ready(db):
    tenant = pending("aioslow")
    started = time.monotonic()

    with pytest.raises(TenantNotReady, match=r"worker.*still pending after 0\.3s"):
        async_to_sync(tenant.await_until_ready)(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5


def test_await_until_ready_raises_the_error_of_a_failed_tenant(db):
    tenant = failed("aiobroken", "psycopg2.errors.DiskFull: boom")

    with pytest.raises(TenantNotReady, match="DiskFull: boom") as raised:
        async_to_sync(tenant.await_until_ready)(timeout=5)
    assert raised.value.state == "failed"


def test_await_until_ready_of_a_deleted_tenant_raises_does_not_exist_as_the_sync_wait(db):
    tenant = pending("aiogone")
    Customer._base_manager.filter(pk=tenant.pk).delete()

    with pytest.raises(Customer.DoesNotExist):
        tenant.wait_until_ready(timeout=1)
    with pytest.raises(Customer.DoesNotExist):
        async_to_sync(tenant.await_until_ready)(timeout=1)


def test_await_until_ready_lets_other_coroutines_run_while_it_waits(db):
    tenant = pending("aiowaiting")
    ticks = []

    @in_event_loop
    async def scenario():
        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        beat = asyncio.ensure_future(ticker())
        try:
            with pytest.raises(TenantNotReady):
                await tenant.await_until_ready(timeout=0.5)
        finally:
            beat.cancel()

    scenario()
    # 0.5 s at one tick per 10 ms: about 50 on a loop that is never blocked.
    assert len(ticks) >= 20


@pytest.fixture
def storage_dropped(transactional_db):
    yield
    drop_all_tenant_storage()


@pytest.mark.postgresql
def test_await_until_ready_sees_a_real_worker_provision_a_tenant_created_async(
    async_lifecycle, storage_dropped
):
    @in_event_loop
    async def scenario():
        customer = await Customer.objects.acreate(name="aioworker")
        assert customer.state == TenantState.PENDING
        await customer.await_until_ready(timeout=60)
        TenantProject = await Project.afor_tenant(customer)
        await TenantProject.objects.acreate(name="first")
        return customer, await TenantProject.objects.acount()

    customer, count = scenario()

    assert customer.state == TenantState.READY and count == 1


# The async ORM on tenant classes


def test_the_async_orm_works_on_tenant_classes(ready):
    @in_event_loop
    async def scenario():
        TenantProject = await Project.afor_tenant(ready)
        TenantReport = await Report.afor_tenant(ready)
        first = await TenantProject.objects.acreate(name="first")
        await TenantProject.objects.acreate(name="second")
        await TenantReport.objects.acreate(project=first, content="hello")
        fetched = await TenantProject.objects.aget(name="first")
        names = [p.name async for p in TenantProject.objects.order_by("name")]
        reports = [r.content async for r in TenantReport.objects.filter(project__name="first")]
        updated = await TenantProject.objects.filter(name="second").aupdate(name="2nd")
        same = fetched.pk == first.pk
        await fetched.adelete()  # and its report, by cascade
        return (
            same,
            isinstance(fetched, Project),
            names,
            reports,
            updated,
            await TenantProject.objects.acount(),
            await TenantReport.objects.aexists(),
        )

    assert scenario() == (True, True, ["first", "second"], ["hello"], 1, 1, False)


def test_the_async_orm_of_a_tenant_class_raises_its_templates_does_not_exist(ready):
    @in_event_loop
    async def scenario():
        TenantProject = await Project.afor_tenant(ready)
        with pytest.raises(Project.DoesNotExist):
            await TenantProject.objects.aget(name="missing")

    scenario()


# TenantMiddleware, async path


def test_middleware_before_an_async_view_is_a_coroutine_function():
    assert iscoroutinefunction(TenantMiddleware(ok))
    assert not iscoroutinefunction(TenantMiddleware(lambda request: HttpResponse()))


def test_async_middleware_sets_request_tenant_of_a_ready_tenant(ready):
    request = RequestFactory().get("/", HTTP_HOST="aioready.example.com")

    response = async_to_sync(TenantMiddleware(ok))(request)

    assert response.status_code == 200
    assert request.tenant == ready


def test_async_middleware_raises_http404_for_an_unknown_tenant(db):
    request = RequestFactory().get("/", HTTP_HOST="aioghost.example.com")

    with pytest.raises(Http404, match="aioghost"):
        async_to_sync(TenantMiddleware(ok))(request)


def test_async_middleware_answers_503_for_a_pending_tenant(db):
    pending("aiopending")
    request = RequestFactory().get("/", HTTP_HOST="aiopending.example.com")

    response = async_to_sync(TenantMiddleware(ok))(request)

    assert response.status_code == 503 and response.headers["retry-after"] == "5"


def test_async_middleware_reads_nothing_for_a_host_naming_no_tenant(db, django_assert_num_queries):
    request = RequestFactory().get("/", HTTP_HOST="www.example.com")

    with django_assert_num_queries(0):
        response = async_to_sync(TenantMiddleware(ok))(request)

    assert response.content == b"tenant=None"


def test_async_middleware_sets_vary_for_the_header_resolver(ready):
    request = RequestFactory().get("/", headers={"X-Tenant": "aioready"})

    with override_settings(TENANCY_TENANT_RESOLVER="header"):
        response = async_to_sync(TenantMiddleware(ok))(request)

    assert response.content == b"tenant=aioready"
    assert response["Vary"] == "X-Tenant"


# Under ASGI (AsyncClient: Django's ASGI handler and the test project's URLs)


def test_under_asgi_the_middleware_runs_in_async_mode():
    handler = get_asgi_application()
    middleware = [
        method.__self__
        for method in handler._exception_middleware
        if isinstance(getattr(method, "__self__", None), TenantMiddleware)
    ]

    assert len(middleware) == 1 and middleware[0].async_mode


def test_under_asgi_neither_tenancy_middleware_needs_a_sync_adapter(caplog):
    # With DEBUG, Django logs each handler it adapts between sync and async.
    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "tenancy.middleware.TenantMiddleware",
        "tenancy.auth.TenantAuthenticationMiddleware",
    ]
    with (
        override_settings(DEBUG=True, MIDDLEWARE=middleware),
        caplog.at_level("DEBUG", logger="django.request"),
    ):
        ASGIHandler()  # get_asgi_application() without django.setup(), which resets logging

    assert [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()] == []


def test_under_asgi_a_ready_tenant_is_served_by_an_async_view_with_the_async_orm(ready):
    TenantProject = Project.for_tenant(ready)
    TenantProject.objects.bulk_create([TenantProject(name="b"), TenantProject(name="a")])

    response = get("/project-names/", "aioready.example.com")

    assert response.status_code == 200
    assert response.content == b"a,b"


def test_under_asgi_a_sync_view_gets_request_tenant_too(ready):
    response = get("/sync-whoami/", "aioready.example.com")

    assert response.content == b"sync tenant=aioready"


@committed
def test_under_asgi_an_unknown_host_is_a_404():
    response = get("/whoami/", "aioghost.example.com")

    assert response.status_code == 404


@committed
def test_under_asgi_a_pending_tenant_gets_503_with_retry_after():
    pending("aiopending")

    response = get("/whoami/", "aiopending.example.com")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert b"Setting up your workspace" in response.content
    assert "no-cache" in response.headers["cache-control"]


@committed
def test_under_asgi_a_failed_tenant_gets_503_without_retry_after():
    failed("aiobroken")

    response = get("/whoami/", "aiobroken.example.com")

    assert response.status_code == 503
    assert "retry-after" not in response.headers
    assert b"could not be set up" in response.content


@committed
def test_under_asgi_an_async_view_using_a_pending_tenant_gets_the_503_page():
    pending("aiopending")

    response = get("/project-count/", "www.example.com", "tenant=aiopending")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


@committed
def test_under_asgi_a_host_naming_no_tenant_passes_through():
    response = get("/whoami/", "example.com")

    assert response.status_code == 200 and response.content == b"tenant=None"


# TenantAuthenticationMiddleware, async path


def test_tenant_authentication_middleware_is_async_capable(ready):
    middleware = TenantAuthenticationMiddleware(ok)
    request = RequestFactory().get("/")
    request.session, request.tenant = {}, ready

    response = async_to_sync(middleware)(request)

    assert iscoroutinefunction(middleware)
    assert response.status_code == 200
    assert async_to_sync(sync_to_async(lambda: request.tenant_user.is_authenticated))() is False


def test_tenant_authentication_middleware_in_async_mode_still_checks_its_order():
    request = RequestFactory().get("/")

    with pytest.raises(Exception, match="SessionMiddleware"):
        async_to_sync(TenantAuthenticationMiddleware(ok))(request)


# The docs


def test_the_quickstarts_async_view_runs(ready):
    quickstart = (Path(__file__).resolve().parent.parent / "docs" / "quickstart.md").read_text()
    section = quickstart.split("### Async views", 1)[1]
    source = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(source.replace("from myapp.models", "from tests.testapp.models"), namespace)
    request = RequestFactory().post("/", {"name": "first"})
    request.tenant = ready

    response = async_to_sync(namespace["project_summary"])(request)

    assert json.loads(response.content) == {"projects": ["first"], "reports": 0}

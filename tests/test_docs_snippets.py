"""The snippets of docs/caches-and-files.md and docs/drf.md run, as a user would run them.

Each Python block that follows ``<!-- runs in tests/test_docs_snippets.py -->``
is run, in order, in one namespace per page; the tenants the snippets name get
names of these tests' own.
"""

from __future__ import annotations

import re
import sys
import types
import uuid
from pathlib import Path

import pytest
import redis
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import include, path

from tests.testapp.models import Customer, Project

DOCS = Path(__file__).resolve().parent.parent / "docs"
MARK = "<!-- runs in tests/test_docs_snippets.py -->"
#: The docs' tenant names, and the names these tests give them.
NAMES = {'"acme"': '"h15docsacme"', '"globex"': '"h15docsglobex"'}


def snippets(page: str) -> list[str]:
    """Return the marked Python blocks of ``docs/<page>``, tenant names replaced."""
    text = (DOCS / page).read_text()
    blocks = re.findall(re.escape(MARK) + r"\n```python\n(.*?)```", text, re.DOTALL)
    assert blocks, f"no runnable snippet in docs/{page}"
    for docs_name, test_name in NAMES.items():
        blocks = [block.replace(docs_name, test_name) for block in blocks]
    return [
        block.replace("from myapp.models import", "from tests.testapp.models import")
        for block in blocks
    ]


def run(block: str, namespace: dict) -> None:
    exec(compile(block, "<docs snippet>", "exec"), namespace)


@pytest.fixture
def redis_prefix():
    prefix = f"h15-docs-{uuid.uuid4().hex[:12]}"
    yield prefix
    raw = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    for key in raw.scan_iter(match=f"{prefix}:*"):
        raw.delete(key)


def test_the_caches_and_files_snippets_run(make_tenant, settings, tmp_path, redis_prefix):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/11",
            "KEY_PREFIX": redis_prefix,
        },
        "sessions": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    acme, globex = make_tenant("h15docsacme"), make_tenant("h15docsglobex")
    namespace = {
        "Customer": Customer,
        "HttpResponse": HttpResponse,
        "build_menu": lambda: ["home", "projects"],
        "render_dashboard": lambda tenant: f"<p>{tenant.name}</p>",
    }
    cache_block, view_block, storage_block, test_block = snippets("caches-and-files.md")

    run(cache_block, namespace)
    assert acme.cache.get("plan") == "pro" and globex.cache.get("plan") is None
    assert namespace["sessions"].get("menu") == ["home", "projects"]

    run(view_block, namespace)
    request = RequestFactory().get("/")
    request.tenant = acme
    assert namespace["dashboard"](request).content == b"<p>h15docsacme</p>"
    assert acme.cache.get("dashboard") == "<p>h15docsacme</p>"

    run(storage_block, namespace)
    assert namespace["name"] == "reports/2025.csv"
    assert namespace["storage"].listdir("reports") == ([], ["2025.csv"])
    assert namespace["storage"].url("x").startswith("/media/tenants/tenant_h15docsacme/")

    run(test_block, namespace)
    namespace["test_the_dashboard_is_cached_per_tenant"](settings, tmp_path, acme)


def test_the_drf_snippets_run(make_tenant):
    api_block, filtered_block, outside_block, test_block = snippets("drf.md")
    namespace: dict = {}
    run(api_block, namespace)
    run(filtered_block, namespace)
    customer = make_tenant("h15docsdrf")
    namespace["customer"] = customer
    run(outside_block, namespace)
    assert Project.for_tenant(customer).objects.get().name == "imported"

    urls = types.ModuleType("tests.h15_docs_drf_urls")
    urls.urlpatterns = [path("api/", include(namespace["router"].urls))]
    sys.modules[urls.__name__] = urls
    try:
        with override_settings(
            ROOT_URLCONF=urls.__name__,
            MIDDLEWARE=["tenancy.middleware.TenantMiddleware"],
            ALLOWED_HOSTS=[".example.com"],
            TENANCY_TENANT_RESOLVER="subdomain",
            TENANCY_BASE_DOMAIN="example.com",
        ):
            run(test_block, namespace)
            Project.for_tenant(customer).objects.all().delete()
            namespace["test_projects_are_listed_per_tenant"](customer)
    finally:
        del sys.modules[urls.__name__]

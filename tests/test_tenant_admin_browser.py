"""The tenant admin (tenancy.tenant_admin) in a real browser: headless Chromium on a
tenant's host, ``<name>.localhost`` (Chromium resolves every ``*.localhost`` to
the loopback address, where the live server listens).

The browser setup is tests/test_admin_browser.py's. The screenshot of the
change list is saved to /tmp/tenant_admin.png.
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User

from tests.test_admin_browser import PASSWORD, chromium  # noqa: F401 (a fixture)
from tests.testapp.models import Project, Report

SCREENSHOT = "/tmp/tenant_admin.png"


@pytest.fixture
def tenant_live_server(transactional_db, settings):
    """A live server of its own: the session's ``live_server`` loaded its middleware
    before this test's settings, which add TenantMiddleware and the tenant URL conf."""
    from pytest_django.live_server_helper import LiveServer

    settings.ALLOWED_HOSTS = [".localhost", "localhost"]
    settings.TENANCY_TENANT_RESOLVER = "subdomain"
    settings.TENANCY_BASE_DOMAIN = "localhost"
    settings.MIDDLEWARE = [
        *django_settings.MIDDLEWARE,
        "tenancy.middleware.TenantMiddleware",
        "tests.tenant_admin_urls.tenant_urls",
    ]
    server = LiveServer("localhost:0")
    yield server
    server.stop()


def test_a_superuser_lists_adds_searches_changes_and_deletes_a_tenants_projects(
    make_tenant,
    tenant_live_server,
    chromium,  # noqa: F811
):
    from playwright.sync_api import expect  # present: the chromium fixture skips otherwise

    User.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    tenant = make_tenant("ta16web")
    other = make_tenant("ta16other")
    gemini = Project.for_tenant(tenant).objects.create(name="gemini")
    Report.for_tenant(tenant).objects.create(project=gemini, content="orbit")
    Project.for_tenant(tenant).objects.create(name="apollo")
    Project.for_tenant(other).objects.create(name="not acme's")
    origin = tenant_live_server.url.replace("://localhost", f"://{tenant.name}.localhost")

    with chromium() as page:
        page.goto(f"{origin}/admin/login/?next=/admin/testapp/project/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")

        # The list: this tenant's projects only, by name, under a header naming it.
        expect(page.locator("#site-name")).to_have_text("Django administration: ta16web")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.locator("th.field-name")).to_have_text(["apollo", "gemini"])

        # Add one, with a report in the inline.
        page.click(".object-tools a.addlink")
        page.fill("#id_name", "mercury")
        page.fill("#id_reports-0-content", "first flight")
        page.click("input[name=_save]")
        expect(page.locator("ul.messagelist li.success")).to_contain_text("mercury")
        expect(rows).to_have_count(3)
        page.screenshot(path=SCREENSHOT, full_page=True)

        # Search by a report's content.
        page.fill("#searchbar", "first flight")
        page.press("#searchbar", "Enter")
        page.wait_for_url("**q=first+flight**")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("th.field-name")).to_have_text("mercury")

        # Change it.
        rows.first.locator("th.field-name a").click()
        page.fill("#id_name", "mercury seven")
        page.click("input[name=_save]")
        expect(page.locator("ul.messagelist li.success")).to_contain_text("mercury seven")

        # Its history: added, then changed.
        rows.filter(has_text="mercury seven").locator("th.field-name a").click()
        page.click("a.historylink")
        expect(page.locator("#change-history tbody tr")).to_have_count(2)
        expect(page.locator("#change-history tbody tr").last).to_contain_text("Changed Name.")

        # Delete gemini, and its report with it.
        page.goto(f"{origin}/admin/testapp/project/")
        rows.filter(has_text="gemini").locator("th.field-name a").click()
        page.click("a.deletelink")
        expect(page.locator("#content")).to_contain_text("Reports: 1")  # it goes too
        page.click("input[type=submit]")
        expect(page.locator("ul.messagelist li.success")).to_contain_text("gemini")
        expect(rows.locator("th.field-name")).to_have_text(["apollo", "mercury seven"])

    assert sorted(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == [
        "apollo",
        "mercury seven",
    ]
    assert not Report.for_tenant(tenant).objects.filter(content="orbit").exists()
    assert list(Project.for_tenant(other).objects.values_list("name", flat=True)) == ["not acme's"]
    logged = LogEntry.objects.filter(object_id__startswith=f"{tenant.incarnation}:")
    assert sorted(logged.values_list("object_repr", "action_flag")) == [
        ("gemini", DELETION),
        ("mercury", ADDITION),
        ("mercury seven", CHANGE),
    ]

"""The tenant admin in a real browser: Debian's headless Chromium driven by Playwright.

Browsers are never downloaded: Playwright runs ``/usr/bin/chromium`` (Debian's
``chromium`` package; ``.ci/run`` installs it and the ``playwright`` module).
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

from tenancy._primitives import storage
from tenancy.models import TenantState
from tests.testapp.models import Customer

CHROMIUM = os.environ.get("TENANCY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 30_000


@pytest.fixture
def chromium():
    """Open a page of a headless Chromium (a context manager); skip when either is missing.

    Playwright's sync API runs an event loop while the browser is open, and
    Django refuses database queries under a running loop: the test prepares
    the database before opening the page and checks it after closing it.
    """
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install playwright"
    )

    @contextlib.contextmanager
    def open_page():
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                sync_api.expect.set_options(timeout=TIMEOUT_MS)
                yield page
            finally:
                browser.close()

    return open_page


def test_an_operator_retries_a_failed_tenant_and_sees_it_become_ready(
    make_tenant, live_server, django_user_model, chromium
):
    from playwright.sync_api import expect  # present: the chromium fixture skips otherwise

    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    make_tenant("acme")
    broken = Customer(
        name="broken",
        database="default",
        state=TenantState.FAILED,
        last_error="OperationalError: could not connect to server",
    )
    broken.db_schema = broken.derive_schema()
    Customer._base_manager.bulk_create([broken])  # failed before its storage was built
    with chromium() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/testapp/customer/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")

        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(2)
        row = rows.filter(has_text="broken")
        expect(row.locator(".tenancy-state")).to_have_text("failed")
        expect(row.locator(".field-short_error")).to_contain_text("could not connect")

        # Filter by state: the sidebar's "failed" link.
        page.locator("#changelist-filter").get_by_role("link", name="failed", exact=True).click()
        page.wait_for_url("**state__exact=failed**")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".field-tenant_key")).to_have_text("broken")

        # Select it and run the action.
        rows.first.locator("input.action-select").check()
        page.select_option("select[name=action]", "retry_provisioning")
        page.click("button[name=index]")
        expect(page.locator("ul.messagelist li.success")).to_have_text(
            "Provisioned 1 tenant(s): broken."
        )

        # Back to every tenant: its badge now says ready, in green.
        page.locator("#changelist-filter").get_by_role("link", name="All").first.click()
        page.wait_for_url(lambda url: "state__exact" not in url)
        expect(rows).to_have_count(2)
        badge = rows.filter(has_text="broken").locator(".tenancy-state")
        expect(badge).to_have_text("ready")
        expect(badge).to_have_attribute("data-state", "ready")
        expect(badge).to_have_css("background-color", "rgb(46, 125, 50)")

    broken.refresh_from_db()
    assert broken.state == TenantState.READY
    assert storage.schema_exists(broken.db_schema, broken.database)

"""The tenant list of the admin fits a 1,400 px wide window, in headless Chromium.

Every column is filled as wide as it gets: a long key, a long schema, a
database alias, each state, a behind tenant and the longest error shown.
A screenshot is left in ``/tmp/admin_1400.png`` (``TENANCY_ADMIN_SCREENSHOT``).
"""

from __future__ import annotations

import os

from tenancy.models import TenantState
from tests.test_admin_browser import PASSWORD, chromium  # noqa: F401 - the fixture
from tests.testapp.models import Customer

SCREENSHOT = os.environ.get("TENANCY_ADMIN_SCREENSHOT", "/tmp/admin_1400.png")
WIDTH = 1400


def test_the_tenant_list_fits_a_1400_px_window_without_scrolling_sideways(
    make_tenant,
    live_server,
    django_user_model,
    chromium,  # noqa: F811 - the fixture
):
    from playwright.sync_api import expect  # present: the chromium fixture skips otherwise

    django_user_model.objects.create_superuser("h14operator", "ops@example.com", PASSWORD)
    make_tenant("h14-a-rather-long-customer-name-of-fifty-chars-xx")
    behind = make_tenant("h14behind")
    Customer.objects.filter(pk=behind.pk).update(migrations_digest="0" * 32)
    failed = Customer(
        name="h14broken",
        database="default",
        state=TenantState.FAILED,
        last_error="psycopg2.errors.DiskFull: could not extend file base/16384/2619: "
        "No space left on device. HINT: Check free disk space.",
    )
    failed.db_schema = failed.derive_schema()
    pending = Customer(name="h14 Pending Tenant With Spaces", database="default")
    pending.db_schema = pending.derive_schema()  # normalised, with its hash suffix
    Customer._base_manager.bulk_create([failed, pending])

    with chromium() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/testapp/customer/")
        page.fill("#id_username", "h14operator")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#result_list tbody tr")).to_have_count(4)
        page.screenshot(path=SCREENSHOT, full_page=True)
        widths = page.evaluate(
            """() => ({
                table: document.querySelector('#result_list').getBoundingClientRect().right,
                page: document.documentElement.scrollWidth,
                viewport: window.innerWidth,
            })"""
        )

    assert widths["viewport"] == WIDTH
    assert widths["table"] <= WIDTH, widths
    assert widths["page"] <= WIDTH, widths  # no horizontal scroll bar

"""The tenant admin (tenancy.tenant_admin) through Django's test client, on both backends.

Tenants' hosts (``<name>.example.com``) are served by ``tests.tenant_admin_urls``,
the main domain by ``tests.urls`` (the shared admin): see docs/admin.md.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.test import RequestFactory, override_settings
from django.urls import path

from tenancy.signals import tenant_dropped
from tenancy.tenant_admin import (
    TenantAdminSite,
    TenantModelAdmin,
    forget_dropped_tenant_history,
    history_key,
)
from tenancy.tenant_admin import site as tenant_admin
from tests import tenant_admin_urls
from tests import urls as shared_urls
from tests.testapp.models import Category, Customer, Product, Project, Report

PASSWORD = "correct horse battery staple"
ROUTING = {
    "ALLOWED_HOSTS": [".example.com", "example.com"],
    "TENANCY_TENANT_RESOLVER": "subdomain",
    "TENANCY_BASE_DOMAIN": "example.com",
    "MIDDLEWARE": [
        *settings.MIDDLEWARE,
        "tenancy.middleware.TenantMiddleware",
        "tests.tenant_admin_urls.tenant_urls",
    ],
    "AUTHENTICATION_BACKENDS": [
        "django.contrib.auth.backends.ModelBackend",
        "tests.test_tenant_admin.StaffOfTenantBackend",
    ],
}


#: One URL conf for both sites, at two prefixes (docs/admin.md); ``shared_urls``
#: registered the tenant model on admin.site.
urlpatterns = [*shared_urls.urlpatterns, path("workspace-admin/", tenant_admin.urls)]


class StaffOfTenantBackend:
    """An object-permission backend: members of the group "staff of <tenant>" may
    change that tenant (``testapp.change_customer`` on its row), so administer its data."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, perm, obj=None):
        return (
            isinstance(obj, Customer)
            and perm == "testapp.change_customer"
            and user.groups.filter(name=f"staff of {obj.name}").exists()
        )


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(**ROUTING):
        yield


@pytest.fixture
def acme(make_tenant):
    return make_tenant("ta16acme")


@pytest.fixture
def beta(make_tenant):
    return make_tenant("ta16beta")


def host(tenant) -> str:
    return f"{tenant.name}.example.com"


def url(*parts) -> str:
    return "/admin/" + "".join(f"{p}/" for p in parts)


def staff(name: str, *permissions: str, of=None) -> User:
    """A staff user with model permissions on templates (``"view_project"``), member of
    the group that may administer ``of`` (a tenant)."""
    user = User.objects.create_user(name, password=PASSWORD, is_staff=True)
    for codename in permissions:
        user.user_permissions.add(permission(codename))
    if of is not None:
        group, _ = Group.objects.get_or_create(name=f"staff of {of.name}")
        user.groups.add(group)
    return user


def permission(codename: str) -> Permission:
    """The permission ``testapp.<codename>``: ``migrate`` creates those of templates, but
    the flush after a transactional test leaves only the global registry's models'."""
    model = codename.split("_", 1)[1]
    content_type, _ = ContentType.objects.get_or_create(app_label="testapp", model=model)
    return Permission.objects.get_or_create(
        codename=codename, content_type=content_type, defaults={"name": codename}
    )[0]


def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client(client, db):
    return logged_in(client, User.objects.create_superuser("root", "root@example.com", PASSWORD))


def rows(response) -> list[str]:
    """The names in the change list's first column."""
    return re.findall(
        r'<th class="field-name"><a href="[^"]*">([^<]*)</a>', response.content.decode()
    )


def inline_data(prefix: str, *forms: dict, initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(forms)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, form in enumerate(forms):
        data.update({f"{prefix}-{index}-{key}": value for key, value in form.items()})
    return data


# -- the site and its registry ----------------------------------------------------------


def test_the_test_project_registers_templates_on_the_tenant_admin_site():
    assert set(tenant_admin._registry) == {Project, Category, Product}
    assert isinstance(tenant_admin._registry[Project], tenant_admin_urls.ProjectAdmin)
    assert isinstance(tenant_admin._registry[Project], TenantModelAdmin)
    assert not admin.site.is_registered(Project)


def test_a_shared_model_cannot_be_registered_on_a_tenant_admin_site():
    with pytest.raises(ImproperlyConfigured, match="Customer is no template"):
        TenantAdminSite(name="other").register(Customer)


def test_the_registered_classes_methods_come_before_the_tenant_admins():
    class Logging(admin.ModelAdmin):
        def log_change(self, request, obj, message):
            return ("mine", super().log_change)

    site = TenantAdminSite(name="mro")
    site.register(Report, Logging)
    bound = type(site._registry[Report])
    assert bound.__mro__[1:4] == (Logging, TenantModelAdmin, admin.ModelAdmin)


def test_the_tenant_admin_passes_djangos_admin_checks():
    assert tenant_admin.check(None) == []


def test_a_tenants_copy_of_the_site_holds_modeladmins_of_its_classes(acme):
    bound = tenant_admin.for_tenant(acme)
    tenant_project = Project.for_tenant(acme)
    assert bound.tenant == acme and tenant_admin.tenant is None
    assert bound._registry[tenant_project].model is tenant_project
    assert bound._registry[tenant_project].admin_site is bound


# -- list, add, change, delete ------------------------------------------------------------


def test_the_change_list_shows_the_rows_of_the_hosts_tenant_only(acme, beta, superuser_client):
    Project.for_tenant(acme).objects.create(name="apollo")
    Project.for_tenant(beta).objects.create(name="bravo")
    response = superuser_client.get(url("testapp", "project"), HTTP_HOST=host(acme))
    assert response.status_code == 200
    assert rows(response) == ["apollo"]
    assert rows(superuser_client.get(url("testapp", "project"), HTTP_HOST=host(beta))) == ["bravo"]


def test_the_index_lists_the_registered_templates(acme, superuser_client):
    html = superuser_client.get(url(), HTTP_HOST=host(acme)).content.decode()
    assert 'href="/admin/testapp/project/"' in html
    assert 'href="/admin/testapp/category/"' in html
    assert "/admin/testapp/customer/" not in html  # the shared admin's


def test_every_page_names_the_tenant_in_its_header(acme, superuser_client):
    for page_url in (url(), url("testapp", "project"), url("testapp", "project", "add")):
        response = superuser_client.get(page_url, HTTP_HOST=host(acme))
        assert response.context["tenant"] == acme
        header = response.content.decode().split('id="site-name"', 1)[1].split("</", 1)[0]
        assert header.endswith("Django administration: ta16acme")


def test_breadcrumbs_name_the_templates_app(acme, superuser_client):
    project = Project.for_tenant(acme).objects.create(name="apollo")
    for page_url in (url("testapp", "project"), url("testapp", "project", project.pk, "change")):
        html = superuser_client.get(page_url, HTTP_HOST=host(acme)).content.decode()
        breadcrumbs = html.split('class="breadcrumbs"', 1)[1].split("</div>", 1)[0]
        assert '<a href="/admin/testapp/">Testapp</a>' in breadcrumbs


def test_add_creates_the_row_and_its_inline_rows_in_the_tenants_storage(
    acme, beta, superuser_client
):
    data = {"name": "apollo", **inline_data("reports", {"content": "first report"})}
    response = superuser_client.post(url("testapp", "project", "add"), data, HTTP_HOST=host(acme))
    assert response.status_code == 302, response.content.decode()
    project = Project.for_tenant(acme).objects.get()
    assert project.name == "apollo"
    assert [r.content for r in Report.for_tenant(acme).objects.filter(project=project)] == [
        "first report"
    ]
    assert not Project.for_tenant(beta).objects.exists()


def test_change_edits_the_row_and_its_inlines(acme, superuser_client):
    project = Project.for_tenant(acme).objects.create(name="apollo")
    report = Report.for_tenant(acme).objects.create(project=project, content="draft")
    change = url("testapp", "project", project.pk, "change")
    page = superuser_client.get(change, HTTP_HOST=host(acme)).content.decode()
    assert 'value="apollo"' in page and "draft" in page
    data = {
        "name": "apollo 2",
        **inline_data("reports", {"id": str(report.pk), "content": "final"}, initial=1),
    }
    response = superuser_client.post(change, data, HTTP_HOST=host(acme))
    assert response.status_code == 302, response.content.decode()
    project.refresh_from_db()
    report.refresh_from_db()
    assert (project.name, report.content) == ("apollo 2", "final")


def test_delete_deletes_the_row_of_the_hosts_tenant_only(acme, beta, superuser_client):
    mine = Project.for_tenant(acme).objects.create(name="apollo")
    theirs = Project.for_tenant(beta).objects.create(name="bravo")
    assert mine.pk == theirs.pk  # each tenant has its own sequence
    delete = url("testapp", "project", mine.pk, "delete")
    page = superuser_client.get(delete, HTTP_HOST=host(acme)).content.decode()
    assert "apollo" in page and "bravo" not in page
    response = superuser_client.post(delete, {"post": "yes"}, HTTP_HOST=host(acme))
    assert response.status_code == 302
    assert not Project.for_tenant(acme).objects.exists()
    assert Project.for_tenant(beta).objects.get().name == "bravo"


# -- search, filters, actions -------------------------------------------------------------


def test_search_finds_rows_by_their_name_and_by_a_related_tenant_row(acme, superuser_client):
    tenant_project = Project.for_tenant(acme)
    tenant_project.objects.create(name="apollo")
    gemini = tenant_project.objects.create(name="gemini")
    Report.for_tenant(acme).objects.create(project=gemini, content="splashdown in the pacific")
    changelist = url("testapp", "project")
    found = superuser_client.get(changelist, {"q": "apol"}, HTTP_HOST=host(acme))
    assert rows(found) == ["apollo"]
    found = superuser_client.get(changelist, {"q": "pacific"}, HTTP_HOST=host(acme))
    assert rows(found) == ["gemini"]


def test_a_filter_on_a_relation_offers_and_filters_by_the_tenants_rows(
    acme, beta, superuser_client
):
    books = Category.for_tenant(acme).objects.create(name="books")
    toys = Category.for_tenant(acme).objects.create(name="toys")
    for name in ("b1", "b2", "b3"):
        Category.for_tenant(beta).objects.create(name=name)
    Product.for_tenant(acme).objects.create(name="novel", category=books)
    Product.for_tenant(acme).objects.create(name="kite", category=toys)
    changelist = url("testapp", "product")
    html = superuser_client.get(changelist, HTTP_HOST=host(acme)).content.decode()
    filters = html.split('id="changelist-filter"', 1)[1].split("</nav>", 1)[0]
    offered = set(re.findall(r"category__id__exact=(\d+)", filters))
    assert offered == {str(books.pk), str(toys.pk)}  # not beta's third category
    filtered = superuser_client.get(
        changelist, {"category__id__exact": toys.pk}, HTTP_HOST=host(acme)
    )
    assert rows(filtered) == ["kite"]


def test_autocomplete_offers_the_tenants_rows_only(acme, beta, superuser_client):
    for name in ("toys", "tools", "books"):
        Category.for_tenant(acme).objects.create(name=name)
    for name in ("b1", "b2", "b3", "b4 toys"):
        Category.for_tenant(beta).objects.create(name=name)
    form = superuser_client.get(url("testapp", "product", "add"), HTTP_HOST=host(acme))
    assert 'data-ajax--url="/admin/autocomplete/"' in form.content.decode()
    query = {"app_label": "testapp", "model_name": "product", "field_name": "category"}
    found = superuser_client.get(
        url("autocomplete"), {**query, "term": "to"}, HTTP_HOST=host(acme)
    ).json()
    assert [r["id"] for r in found["results"]] == ["2", "1"]  # tools, toys; not beta's 4
    missing = superuser_client.get(
        url("autocomplete"), {**query, "model_name": "customer"}, HTTP_HOST=host(acme)
    )
    assert missing.status_code == 403


def test_a_related_row_is_added_from_a_form_in_a_popup_into_the_tenants_table(
    acme, beta, superuser_client
):
    form = superuser_client.get(url("testapp", "product", "add"), HTTP_HOST=host(acme))
    link = re.search(r'id="add_id_category"[^>]*href="([^"]*)"', form.content.decode())
    link = link or re.search(r'href="([^"]*)"[^>]*id="add_id_category"', form.content.decode())
    assert link and link.group(1).startswith("/admin/testapp/category/add/?")
    response = superuser_client.post(
        url("testapp", "category", "add") + "?_to_field=id&_popup=1",
        {"name": "kites", "_popup": "1", "_to_field": "id", **inline_data("products")},
        HTTP_HOST=host(acme),
    )
    assert response.status_code == 200
    assert "popup_response" in response.content.decode()
    assert list(Category.for_tenant(acme).objects.values_list("name", flat=True)) == ["kites"]
    assert not Category.for_tenant(beta).objects.exists()


def test_view_on_site_links_to_the_rows_own_url(acme, superuser_client, monkeypatch):
    monkeypatch.setattr(Project, "get_absolute_url", lambda p: f"/projects/{p.pk}/", raising=False)
    project = Project.for_tenant(acme).objects.create(name="apollo")
    change = url("testapp", "project", project.pk, "change")
    page = superuser_client.get(change, HTTP_HOST=host(acme)).content.decode()
    assert f'href="/projects/{project.pk}/" class="viewsitelink"' in page


def test_an_action_runs_on_the_selected_rows_of_the_tenant(acme, beta, superuser_client):
    apollo = Project.for_tenant(acme).objects.create(name="apollo")
    Project.for_tenant(acme).objects.create(name="gemini")
    bravo = Project.for_tenant(beta).objects.create(name="bravo")
    data = {"action": "shout", "_selected_action": [apollo.pk]}
    response = superuser_client.post(
        url("testapp", "project"), data, HTTP_HOST=host(acme), follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["Shouted 1 project(s)."]
    assert list(Project.for_tenant(acme).objects.values_list("name", flat=True)) == [
        "APOLLO",
        "gemini",
    ]
    bravo.refresh_from_db()
    assert bravo.name == "bravo"


def test_delete_selected_with_another_tenants_pks_deletes_nothing_of_it(
    acme, beta, superuser_client
):
    Project.for_tenant(acme).objects.create(name="apollo")
    theirs = [Project.for_tenant(beta).objects.create(name=n).pk for n in ("b1", "b2", "b3")]
    data = {"action": "delete_selected", "_selected_action": theirs, "post": "yes"}
    superuser_client.post(url("testapp", "project"), data, HTTP_HOST=host(acme), follow=True)
    assert Project.for_tenant(beta).objects.count() == 3
    # pk 1 is acme's own "apollo": only that one went, and it is logged for acme.
    assert not Project.for_tenant(acme).objects.exists()
    (entry,) = LogEntry.objects.filter(action_flag=DELETION)
    assert entry.object_id == history_key(acme, theirs[0])


# -- the change history -------------------------------------------------------------------


def test_add_change_and_delete_are_logged_against_the_tenants_incarnation(acme, superuser_client):
    data = {"name": "apollo", **inline_data("reports")}
    superuser_client.post(url("testapp", "project", "add"), data, HTTP_HOST=host(acme))
    project = Project.for_tenant(acme).objects.get()
    data["name"] = "apollo 2"
    superuser_client.post(
        url("testapp", "project", project.pk, "change"), data, HTTP_HOST=host(acme)
    )
    superuser_client.post(
        url("testapp", "project", project.pk, "delete"), {"post": "yes"}, HTTP_HOST=host(acme)
    )
    entries = LogEntry.objects.order_by("pk")
    assert [(e.action_flag, e.object_id, e.object_repr) for e in entries] == [
        (ADDITION, f"{acme.incarnation}:{project.pk}", "apollo"),
        (CHANGE, f"{acme.incarnation}:{project.pk}", "apollo 2"),
        (DELETION, f"{acme.incarnation}:{project.pk}", "apollo 2"),
    ]
    assert {e.content_type.model for e in entries} == {"project"}
    assert entries[1].get_change_message() == "Changed Name."


def test_the_history_of_a_row_shows_the_entries_of_its_tenant_only(acme, beta, superuser_client):
    for tenant, name in ((acme, "apollo"), (beta, "bravo")):
        project = Project.for_tenant(tenant).objects.create(name=name)
        data = {"name": f"{name} renamed", **inline_data("reports")}
        superuser_client.post(
            url("testapp", "project", project.pk, "change"), data, HTTP_HOST=host(tenant)
        )
    assert LogEntry.objects.count() == 2  # the same pk, the same content type
    history = superuser_client.get(
        url("testapp", "project", project.pk, "history"), HTTP_HOST=host(acme)
    )
    assert history.status_code == 200
    assert [e.object_repr for e in history.context["action_list"]] == ["apollo renamed"]
    assert "Changed Name." in history.content.decode()


def test_the_index_shows_recent_actions_of_the_hosts_tenant_only_linked_to_its_rows(
    acme, beta, superuser_client
):
    for tenant, name in ((acme, "apollo"), (beta, "bravo")):
        data = {"name": name, **inline_data("reports")}
        superuser_client.post(url("testapp", "project", "add"), data, HTTP_HOST=host(tenant))
    html = superuser_client.get(url(), HTTP_HOST=host(acme)).content.decode()
    recent = html.split('id="recent-actions-module"', 1)[1]
    assert "apollo" in recent and "bravo" not in recent
    pk = Project.for_tenant(acme).objects.get().pk
    assert f'href="/admin/testapp/project/{pk}/change/"' in recent


def test_a_tenant_signed_up_again_under_the_same_key_has_none_of_the_old_history(
    make_tenant, superuser_client
):
    old = make_tenant("ta16again")
    data = {"name": "apollo", **inline_data("reports")}
    superuser_client.post(url("testapp", "project", "add"), data, HTTP_HOST=host(old))
    # As where the drop ran without django.contrib.admin: the old entries are left.
    with disconnected(tenant_dropped, "tenancy.tenant_admin", forget_dropped_tenant_history):
        old.delete()
    new = make_tenant("ta16again")
    Project.for_tenant(new).objects.create(name="fresh")
    assert LogEntry.objects.count() == 1
    html = superuser_client.get(url(), HTTP_HOST=host(new)).content.decode()
    assert "apollo" not in html.split('id="recent-actions-module"', 1)[1]
    history = superuser_client.get(url("testapp", "project", 1, "history"), HTTP_HOST=host(new))
    assert list(history.context["action_list"]) == []


def test_a_dropped_tenants_history_goes_with_its_schema(acme, beta, superuser_client):
    for tenant in (acme, beta):
        data = {"name": "apollo", **inline_data("reports")}
        superuser_client.post(url("testapp", "project", "add"), data, HTTP_HOST=host(tenant))
    incarnation = acme.incarnation
    acme.delete()  # dropped at once: the lifecycle is eager
    assert not LogEntry.objects.filter(object_id__startswith=f"{incarnation}:").exists()
    assert LogEntry.objects.get().object_id == history_key(beta, 1)


def test_a_drop_deletes_no_log_entry_of_a_shared_model(acme, superuser_client):
    """Only the history of the templates' rows goes: a shared model's entry whose
    object_id happens to start with the tenant's history key (a chosen string pk)
    is not the tenant's, and stays."""
    entry = LogEntry.objects.create(
        user=User.objects.get(is_superuser=True),
        content_type=ContentType.objects.get_for_model(User),
        object_id=history_key(acme, "chosen"),
        object_repr="a shared row",
        action_flag=CHANGE,
    )
    acme.delete()  # dropped at once: the lifecycle is eager
    assert LogEntry.objects.filter(pk=entry.pk).exists()


def test_the_drop_of_a_moved_tenants_source_copy_keeps_its_history(acme, superuser_client):
    data = {"name": "apollo", **inline_data("reports")}
    superuser_client.post(url("testapp", "project", "add"), data, HTTP_HOST=host(acme))
    # A move drops the source copy with the tenant's incarnation, the tenant lives on.
    tenant_dropped.send(
        sender=Customer, schema=acme.db_schema, database="default", incarnation=acme.incarnation
    )
    assert LogEntry.objects.get().object_id == history_key(acme, 1)


@contextlib.contextmanager
def disconnected(signal, dispatch_uid, receiver):
    signal.disconnect(dispatch_uid=dispatch_uid)
    try:
        yield
    finally:
        signal.connect(receiver, dispatch_uid=dispatch_uid)


# -- who may administer which tenant --------------------------------------------------------


def test_staff_of_tenant_a_on_tenant_bs_host_is_sent_to_the_login_page(acme, beta, client):
    Project.for_tenant(beta).objects.create(name="bravo")
    logged_in(client, staff("alice", "view_project", "change_project", of=acme))
    for page_url in (url(), url("testapp", "project"), url("testapp", "project", 1, "change")):
        response = client.get(page_url, HTTP_HOST=host(beta))
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")
    page = client.get(url("testapp", "project"), HTTP_HOST=host(beta), follow=True)
    assert "You are authenticated as alice, but are not authorized" in " ".join(
        page.content.decode().split()
    )
    assert "bravo" not in page.content.decode()
    # On her own tenant's host she is in.
    assert client.get(url("testapp", "project"), HTTP_HOST=host(acme)).status_code == 200


def test_an_id_of_another_tenants_row_under_the_own_host_is_a_404(acme, beta, client):
    Project.for_tenant(acme).objects.create(name="apollo")
    theirs = [Project.for_tenant(beta).objects.create(name=n) for n in ("b1", "b2", "b3")][-1]
    logged_in(client, staff("alice", "view_project", "change_project", "delete_project", of=acme))
    for view in ("change", "history", "delete"):
        response = client.get(url("testapp", "project", theirs.pk, view), HTTP_HOST=host(acme))
        assert response.status_code == 404, view
    response = client.post(
        url("testapp", "project", theirs.pk, "change"), {"name": "x"}, HTTP_HOST=host(acme)
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "b3"


def test_a_staff_user_with_model_permissions_but_no_tenant_is_refused(acme, client):
    logged_in(client, staff("mallory", "view_project", "change_project"))
    response = client.get(url("testapp", "project"), HTTP_HOST=host(acme))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_inactive_or_non_staff_user_of_the_tenant_is_refused(acme, client):
    user = staff("bob", "view_project", of=acme)
    user.is_staff = False
    user.save()
    logged_in(client, user)
    assert client.get(url("testapp", "project"), HTTP_HOST=host(acme)).status_code == 302


def test_model_permissions_on_the_template_decide_what_a_tenants_staff_may_do(acme, client):
    project = Project.for_tenant(acme).objects.create(name="apollo")
    logged_in(client, staff("viewer", "view_project", of=acme))
    assert rows(client.get(url("testapp", "project"), HTTP_HOST=host(acme))) == ["apollo"]
    change = url("testapp", "project", project.pk, "change")
    page = client.get(change, HTTP_HOST=host(acme)).content.decode()
    assert 'name="_save"' not in page  # read only
    assert client.post(change, {"name": "x"}, HTTP_HOST=host(acme)).status_code == 403
    assert client.get(url("testapp", "project", "add"), HTTP_HOST=host(acme)).status_code == 403
    delete = url("testapp", "project", project.pk, "delete")
    assert client.post(delete, {"post": "yes"}, HTTP_HOST=host(acme)).status_code == 403
    assert client.get(url("testapp", "category"), HTTP_HOST=host(acme)).status_code == 403
    project.refresh_from_db()
    assert project.name == "apollo"


def test_an_inline_needs_its_own_model_permissions(acme, client):
    project = Project.for_tenant(acme).objects.create(name="apollo")
    Report.for_tenant(acme).objects.create(project=project, content="secret report")
    logged_in(client, staff("pm", "view_project", "change_project", of=acme))
    page = client.get(url("testapp", "project", project.pk, "change"), HTTP_HOST=host(acme))
    assert "secret report" not in page.content.decode()
    logged_in(client, staff("reader", "view_project", "view_report", of=acme))
    page = client.get(url("testapp", "project", project.pk, "change"), HTTP_HOST=host(acme))
    assert "secret report" in page.content.decode()


# -- requests without a tenant, or with one that is not ready --------------------------------


def test_the_main_domain_serves_the_shared_admin_at_the_same_prefix(acme, superuser_client):
    html = superuser_client.get(url(), HTTP_HOST="example.com").content.decode()
    assert 'href="/admin/testapp/customer/"' in html
    assert "/admin/testapp/project/" not in html
    assert (
        superuser_client.get(url("testapp", "project"), HTTP_HOST="example.com").status_code == 404
    )


def test_both_sites_can_share_one_url_conf_at_two_prefixes(acme, superuser_client):
    project = Project.for_tenant(acme).objects.create(name="apollo")
    with override_settings(
        ROOT_URLCONF="tests.test_tenant_admin", MIDDLEWARE=settings.MIDDLEWARE[:-1]
    ):
        page = superuser_client.get("/workspace-admin/testapp/project/", HTTP_HOST=host(acme))
        assert rows(page) == ["apollo"]
        assert (
            f'href="/workspace-admin/testapp/project/{project.pk}/change/' in page.content.decode()
        )
        shared = superuser_client.get("/admin/", HTTP_HOST="example.com").content.decode()
        assert 'href="/admin/testapp/customer/"' in shared
        bare = superuser_client.get("/workspace-admin/", HTTP_HOST="example.com")
        assert bare.status_code == 404


@override_settings(ROOT_URLCONF="tests.tenant_admin_urls")
def test_every_tenant_admin_page_is_a_404_without_a_tenant(superuser_client):
    for page_url in (
        url(),
        url("login"),
        url("testapp", "project"),
        url("testapp", "project", "add"),
    ):
        assert superuser_client.get(page_url, HTTP_HOST="example.com").status_code == 404, page_url


def pending_tenant(name: str) -> Customer:
    """A tenant nobody provisions (inserted as raw SQL would): it stays pending."""
    Customer._base_manager.bulk_create([Customer(name=name, db_schema=f"tenant_{name}")])
    return Customer.objects.get(name=name)


def test_a_tenant_that_is_not_ready_gets_the_503_page_from_the_site_itself(db):
    # Called without TenantMiddleware (which answers first): the site refuses by itself.
    request = RequestFactory().get("/admin/", HTTP_HOST="ta16setup.example.com")
    request.tenant = pending_tenant("ta16setup")
    request.user = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    response = tenant_admin.admin_view(tenant_admin.index)(request)
    assert response.status_code == 503
    assert response["Retry-After"]
    response = tenant_admin.login(request)
    assert response.status_code == 503


def test_a_view_without_a_tenant_raises_404_from_the_site_itself(db):
    request = RequestFactory().get("/admin/")
    request.tenant = None
    request.user = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    with pytest.raises(Http404):
        tenant_admin.admin_view(tenant_admin.index)(request)


# -- the docs --------------------------------------------------------------------------------


def test_docs_admin_md_shows_the_test_projects_wiring_line_for_line():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "admin.md").read_text()
    section = doc.split("## The tenant's own data", 1)[1]
    (wiring,) = [
        b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "tenant_urls.py" in b
    ]
    source = Path(tenant_admin_urls.__file__).read_text()
    code = [line for line in wiring.splitlines() if line.strip() and not line.startswith("#")]
    assert len(code) > 8
    for line in code:
        assert line.replace("myproject.tenant_urls", "tests.tenant_admin_urls") in source, line

"""The tenant admin of the test project: templates registered on tenancy's tenant
admin site, the URL conf of tenants' hosts, and the middleware that picks it.

The main domain keeps ``tests.urls`` (the shared admin, with the tenant model)
at the same ``/admin/`` prefix: docs/admin.md shows this wiring.
"""

from django.contrib import admin
from django.urls import path

from tenancy.tenant_admin import site as tenant_admin
from tests.testapp.models import Category, Product, Project, Report


class ReportInline(admin.TabularInline):
    model = Report
    extra = 1


@admin.register(Project, site=tenant_admin)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner"]
    list_filter = ["owner"]
    search_fields = ["name", "reports__content"]
    inlines = [ReportInline]
    actions = ["shout"]

    @admin.action(description="Shout the selected projects' names", permissions=["change"])
    def shout(self, request, queryset):
        for project in queryset:
            project.name = project.shout()
            project.save()
        self.message_user(request, f"Shouted {len(queryset)} project(s).")


class ProductInline(admin.TabularInline):
    model = Product
    extra = 0


@admin.register(Category, site=tenant_admin)
class CategoryAdmin(admin.ModelAdmin):
    search_fields = ["name"]
    ordering = ["name"]
    inlines = [ProductInline]


@admin.register(Product, site=tenant_admin)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category"]
    list_filter = ["category"]
    autocomplete_fields = ["category"]


# The URL conf of tenants' hosts.
urlpatterns = [path("admin/", tenant_admin.urls)]


def tenant_urls(get_response):
    """Serve tenants' hosts with this URL conf (after TenantMiddleware)."""

    def middleware(request):
        if request.tenant is not None:
            request.urlconf = "tests.tenant_admin_urls"
        return get_response(request)

    return middleware

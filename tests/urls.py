"""URLs of the test project: the admin, with the tenant model on tenancy's TenantAdmin."""

from django.contrib import admin
from django.urls import path

from tenancy.admin import TenantAdmin
from tests.testapp.models import Customer

if not admin.site.is_registered(Customer):
    admin.site.register(Customer, TenantAdmin)

urlpatterns = [path("admin/", admin.site.urls)]

"""URLs of the async tests: async views using afor_tenant(), for_tenant() and the async ORM."""

from django.http import HttpResponse
from django.urls import path

from tests.testapp.models import Customer, Project


async def whoami(request):
    return HttpResponse(f"tenant={request.tenant}")


def sync_whoami(request):
    return HttpResponse(f"sync tenant={request.tenant}")


async def project_names(request):
    TenantProject = await Project.afor_tenant(request.tenant)
    names = [project.name async for project in TenantProject.objects.order_by("name")]
    return HttpResponse(",".join(names))


async def project_count(request):
    """for_tenant() (not afor_tenant()) in an async view, on the tenant named by ?tenant=."""
    tenant = await Customer.objects.aget(name=request.GET["tenant"])
    return HttpResponse(str(await Project.for_tenant(tenant).objects.acount()))


urlpatterns = [
    path("whoami/", whoami),
    path("sync-whoami/", sync_whoami),
    path("project-names/", project_names),
    path("project-count/", project_count),
]

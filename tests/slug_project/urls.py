"""One view: the request's tenant and its notes."""

from django.http import HttpResponse
from django.urls import path

from tests.slug_project.orgs.models import Note


def notes(request):
    titles = Note.for_tenant(request.tenant).objects.values_list("title", flat=True)
    return HttpResponse(f"{request.tenant.slug}: {','.join(titles)}")


urlpatterns = [path("notes/", notes)]

"""URLs of the request-routing tests: plain views reading request.tenant, and generic views."""

from django import forms
from django.http import HttpResponse
from django.urls import path
from django.views.generic import CreateView, DeleteView, DetailView, ListView, UpdateView

from tenancy.forms import TenantModelForm
from tenancy.views import TenantObjectMixin
from tests.testapp.models import Item, Project


def whoami(request):
    return HttpResponse(f"tenant={request.tenant}")


def project_names(request):
    names = Project.for_tenant(request.tenant).objects.values_list("name", flat=True)
    return HttpResponse(",".join(names))


class ItemForm(TenantModelForm):
    """A form declared on a template whose relations name their models by string."""

    class Meta:
        model = Item
        fields = ["project", "code", "tags"]


class ProjectForm(forms.ModelForm):
    """A model form without Meta.model: a view binds it to its tenant's class of its model."""

    class Meta:
        fields = ["name"]

    def clean_name(self):
        return self.cleaned_data["name"].lower()


class ProjectViewMixin(TenantObjectMixin):
    model = Project
    slug_field = "name"
    success_url = "/projects/"


class ProjectList(ProjectViewMixin, ListView):
    pass


class ProjectDetail(ProjectViewMixin, DetailView):
    pass


class ProjectCreate(ProjectViewMixin, CreateView):
    fields = ["name"]


class ProjectUpdate(ProjectViewMixin, UpdateView):
    fields = ["name"]


class ProjectDelete(ProjectViewMixin, DeleteView):
    pass


class ProjectCreateWithForm(ProjectViewMixin, CreateView):
    form_class = ProjectForm


class ProjectUpdateWithForm(ProjectViewMixin, UpdateView):
    form_class = ProjectForm


class ItemCreate(TenantObjectMixin, CreateView):
    model = Item
    form_class = ItemForm
    success_url = "/projects/"


urlpatterns = [
    path("whoami/", whoami),
    path("project-names/", project_names),
    path("projects/", ProjectList.as_view()),
    path("projects/new/", ProjectCreate.as_view()),
    path("projects/new-with-form/", ProjectCreateWithForm.as_view()),
    path("projects/<slug:slug>/", ProjectDetail.as_view()),
    path("projects/<slug:slug>/edit/", ProjectUpdate.as_view()),
    path("projects/<slug:slug>/rename/", ProjectUpdateWithForm.as_view()),
    path("projects/<slug:slug>/delete/", ProjectDelete.as_view()),
    path("items/new/", ItemCreate.as_view()),
]

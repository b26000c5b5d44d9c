"""URLs of the Django REST framework tests (tests/test_drf.py): viewsets of templates."""

from django.shortcuts import get_object_or_404
from django.urls import include, path
from rest_framework import filters, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.routers import DefaultRouter

from tenancy.drf import TenantModelSerializer, TenantModelViewSet, TenantReadOnlyModelViewSet
from tests.testapp.models import Customer, Project, Report


class ReportSerializer(TenantModelSerializer):
    class Meta:
        model = Report
        fields = ["id", "project", "content"]


class ProjectSerializer(TenantModelSerializer):
    """Nested: the project's reports, serialized by a serializer of another template."""

    reports = ReportSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "owner", "reports"]


class PlainProjectSerializer(serializers.ModelSerializer):
    """A plain ModelSerializer of a template: the viewset binds it."""

    class Meta:
        model = Project
        fields = ["id", "name"]


class TwoPerPage(PageNumberPagination):
    page_size = 2


class ProjectViewSet(TenantModelViewSet):
    model = Project
    serializer_class = ProjectSerializer
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["name"]
    ordering_fields = ["name", "id"]
    pagination_class = TwoPerPage


class ReportViewSet(TenantModelViewSet):
    model = Report
    serializer_class = ReportSerializer


class PlainProjectViewSet(TenantReadOnlyModelViewSet):
    model = Project
    serializer_class = PlainProjectSerializer


class DeepReportSerializer(TenantModelSerializer):
    """DRF's depth: the related project is serialized by a serializer DRF makes."""

    class Meta:
        model = Report
        fields = ["id", "project", "content"]
        depth = 1


class ReportsOfNamedTenant(TenantReadOnlyModelViewSet):
    """A staff API on the public host: the tenant is named in the URL, not by the host."""

    model = Report
    serializer_class = DeepReportSerializer

    def get_tenant(self):
        return get_object_or_404(Customer, name=self.kwargs["tenant"])


router = DefaultRouter()
router.register("projects", ProjectViewSet)  # basename from the template: "project"
router.register("reports", ReportViewSet)
router.register("plain-projects", PlainProjectViewSet, basename="plain-project")

urlpatterns = [
    path("api/", include(router.urls)),
    path("staff/<str:tenant>/reports/", ReportsOfNamedTenant.as_view({"get": "list"})),
]

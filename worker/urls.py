"""URLs of the example web process: a health check that also reads the database."""

from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tenancy import get_tenant_model


def health(request: HttpRequest) -> JsonResponse:
    """Return ``{"status": "ok", "tenants": {state: count}}``."""
    rows = get_tenant_model()._default_manager.values("state").annotate(n=Count("pk"))
    return JsonResponse({"status": "ok", "tenants": {r["state"]: r["n"] for r in rows}})


urlpatterns = [path("health/", health, name="health")]

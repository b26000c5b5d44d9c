"""URLs of the tenant user tests (tests/test_auth.py): log in, log out, who am I."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import path
from django.views import View

from tenancy import auth


def me(request):
    return HttpResponse(f"tenant_user={request.tenant_user} user={request.user}")


@auth.tenant_login_required
def private(request):
    return HttpResponse(f"private to {request.tenant_user}")


class PrivateView(auth.TenantLoginRequiredMixin, View):
    def get(self, request):
        return HttpResponse(f"private view of {request.tenant_user}")


@auth.tenant_login_required
def change_password(request):
    """The tenant user changes its own password and stays logged in here only."""
    user = request.tenant_user
    user.set_password(request.POST["password"])
    user.save()
    auth.update_session_auth_hash(request, user)
    return HttpResponse("changed")


urlpatterns = [
    path("login/", auth.TenantLoginView.as_view(), name="tenant-login"),
    path("logout/", auth.TenantLogoutView.as_view(next_page="/login/"), name="tenant-logout"),
    path("me/", me),
    path("private/", private),
    path("private-view/", PrivateView.as_view()),
    path("password/", change_password),
    path("admin/", admin.site.urls),
]

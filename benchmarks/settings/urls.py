"""An empty URLconf: django-tenants' middleware wants one; requests are simulated."""

urlpatterns: list = []

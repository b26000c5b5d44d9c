"""The shared app of the django-tenants build: ``Client`` (TenantMixin) and ``Domain``."""

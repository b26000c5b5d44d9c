"""The "crm" workload as a django-tenants TENANT_APPS app (plain Django models)."""

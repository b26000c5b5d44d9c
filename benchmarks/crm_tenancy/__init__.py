"""The "crm" workload as django-tenancy tenant model templates (``TenantModel``)."""

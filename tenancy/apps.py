"""App configuration: validates the setup and wires the library's parts together.

The one place that knows every layer: it installs the Celery sender into the
lifecycle's job port, the router into Django's router chain, the tenant
models into the migration state, and the tenant model's signal receivers;
then it builds the tenant classes' prototypes, start-up work like Django's
own model classes.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import router
from django.db.models.signals import post_delete, post_save


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenancy import caches, checks, files, tasks  # checks: importing registers them
        from tenancy._classes import prototypes, routers, validation
        from tenancy._delivery import handlers
        from tenancy._migrating import project_state
        from tenancy._primitives import conf, jobs, shared
        from tenancy.models import install_template_accessors
        from tenancy.signals import tenant_dropped

        validation.check_all()
        project_state.install()
        routers.install(router)  # and kept first when DATABASE_ROUTERS changes
        jobs.install(tasks.send)
        tenant = shared.tenant_model()
        post_save.connect(handlers.tenant_saved, sender=tenant, dispatch_uid="tenancy.saved")
        post_delete.connect(handlers.tenant_deleted, sender=tenant, dispatch_uid="tenancy.deleted")
        install_template_accessors(tenant)
        # A dropped tenant's cache keys and files go with its schema.
        tenant_dropped.connect(caches.forget_dropped_tenant, dispatch_uid="tenancy.caches")
        tenant_dropped.connect(files.remove_dropped_tenant_files, dispatch_uid="tenancy.files")
        if global_apps.is_installed("django.contrib.admin"):
            # ... and the tenant admin's change history of it (rows of django_admin_log).
            from tenancy import tenant_admin

            tenant_dropped.connect(
                tenant_admin.forget_dropped_tenant_history, dispatch_uid="tenancy.tenant_admin"
            )
        prototypes.prepare(conf.databases())  # last: every template and accessor is in place
        assert checks.TAG

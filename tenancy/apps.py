"""App configuration: validates the setup and wires the tenant model's signals."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db import router
from django.db.models.signals import post_delete, post_save


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenancy import handlers, routers, state, validation

        validation.check_all()
        state.install()
        routers.install(router)
        setting_changed.connect(_reinstall_router, dispatch_uid="tenancy.router")
        tenant = validation.tenant_model()
        post_save.connect(handlers.tenant_saved, sender=tenant, dispatch_uid="tenancy.saved")
        post_delete.connect(handlers.tenant_deleted, sender=tenant, dispatch_uid="tenancy.deleted")
        from tenancy import checks  # noqa: F401 - registers the system checks


def _reinstall_router(*, setting: str, **_: Any) -> None:
    # override_settings(DATABASE_ROUTERS=...) rebuilds Django's router list.
    if setting == "DATABASE_ROUTERS":
        from tenancy import routers

        routers.install(router)

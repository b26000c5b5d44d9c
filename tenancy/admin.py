"""Django admin for tenants: the lifecycle at a glance, retry and migrate actions,
and deletions that say which schema they drop.

The project registers its own tenant model, with :class:`TenantAdmin` or its
own ``ModelAdmin`` that mixes in :class:`TenantAdminMixin`::

    from django.contrib import admin
    from tenancy.admin import TenantAdmin
    from myapp.models import Customer

    admin.site.register(Customer, TenantAdmin)

:class:`~tenancy.models.Tombstone` (the drops of deleted tenants' schemas) is
registered read-only on the default admin site.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timezone import is_aware, localtime

from tenancy._migrating.plan import plan
from tenancy._orchestration.provision import retry
from tenancy._orchestration.transitions import describe
from tenancy._primitives import conf, jobs, shared, states, storage
from tenancy.models import LIFECYCLE_FIELDS, AbstractTenant, TenantState, Tombstone

__all__ = [
    "TenantAdmin",
    "TenantAdminMixin",
    "TombstoneAdmin",
    "delete_selected_tenants",
    "natural_key_fields",
]

logger = logging.getLogger("tenancy.admin")


#: Background and text colour of each state's badge: green, amber, red.
BADGE_COLOURS: dict[str, tuple[str, str]] = {
    TenantState.READY: ("#2e7d32", "#ffffff"),
    TenantState.PENDING: ("#f0a202", "#1a1a1a"),
    TenantState.PROVISIONING: ("#f0a202", "#1a1a1a"),
    TenantState.FAILED: ("#c62828", "#ffffff"),
}
BADGE_STYLE = (
    "display:inline-block;padding:1px 8px;border-radius:8px;font-weight:bold;"
    "font-size:11px;background:{};color:{}"
)

STATE_LABELS = dict(TenantState.choices)

#: States from which "Retry provisioning" starts over.
RETRYABLE = (TenantState.FAILED, TenantState.PENDING)
#: States whose storage is not built yet: provisioning builds the current migrations.
UNBUILT = states.UNBUILT

#: Characters of the last error shown in the list (the full text is its tooltip).
ERROR_CHARS = 60
#: Long names without spaces (schemas, keys, errors) wrap anywhere rather than widen the list.
WRAP_STYLE = "overflow-wrap: anywhere;"
#: The second line of a cell: the database under the schema, the time under the state.
SECONDARY_STYLE = "color: var(--body-quiet-color, #666); font-size: 0.85em;"

if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin
else:
    _AdminBase = object


def natural_key_fields(model: type[models.Model]) -> tuple[str, ...]:
    """Return the names of ``model``'s unique text fields (its key, then ``db_schema``)."""
    names = [
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, models.CharField)
        and field.unique
        and field.name not in LIFECYCLE_FIELDS
    ]
    return (*names, "db_schema")


@dataclass(frozen=True)
class _SchemaDrop:
    """What deleting one tenant destroys, as the delete confirmation tells it."""

    tenant: AbstractTenant
    schema: str | None
    database: str
    #: Kept apart: ``delete()`` sets the instance's pk to None.
    tenant_pk: str

    @property
    def what(self) -> str:
        if not self.schema:
            return "has no schema yet: nothing to drop"
        if _uses_schemas(self.database):
            return (
                f'the schema "{self.schema}" on database "{self.database}" will be dropped '
                "with all its tables and data"
            )
        return (
            f'every table prefixed "{self.schema}{storage.PREFIX_SEPARATOR}" on database '
            f'"{self.database}" will be dropped with all its data'
        )


def _schema_drops(tenants: Iterable[AbstractTenant]) -> list[_SchemaDrop]:
    """Return what deleting ``tenants`` drops, one entry per tenant."""
    return [_SchemaDrop(t, t.db_schema, t.database, str(t.pk)) for t in tenants]


@admin.action(
    permissions=["delete"],
    description="Delete selected %(verbose_name_plural)s and drop their schemas",
)
def delete_selected_tenants(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet
) -> HttpResponse | None:
    """Django's bulk delete, whose confirmation page lists the schemas to be dropped."""
    response = delete_selected(modeladmin, request, queryset)
    if isinstance(response, TemplateResponse) and response.context_data is not None:
        response.context_data["tenancy_drops"] = _schema_drops(queryset)
    return response


class TenantAdminMixin(_AdminBase):
    """``ModelAdmin`` behaviour for the tenant model (a subclass of ``AbstractTenant``).

    Lists each tenant's key, schema, database, state (a coloured badge),
    applied migrations (marked "behind" when not current), last error and
    state time; filters by state and database; searches the model's unique
    text fields unless ``search_fields`` is set. The lifecycle fields are
    read-only. Actions: "Retry provisioning", "Migrate now", and a delete
    whose confirmation names each schema that will be dropped.
    """

    # Five columns fit the changelist of a 1,400 px window next to the admin's sidebar
    # and the filters: the database and the state's time share a cell with the
    # schema and the state, and long names wrap (tests/test_admin_browser_width.py).
    list_display = (
        "tenant_key",
        "schema_and_database",
        "state_and_time",
        "applied_migrations",
        "short_error",
    )
    list_filter = ("state", "database")
    actions = ["retry_provisioning", "migrate_now"]
    delete_confirmation_template = "tenancy/admin/delete_confirmation.html"
    delete_selected_confirmation_template = "tenancy/admin/delete_selected_confirmation.html"
    #: Read-only fields shown on the change form of an existing tenant.
    lifecycle_readonly_fields = (
        "state_badge",
        "db_schema",
        "database",
        "applied_migrations",
        "migrations_digest",
        "last_error",
        "state_changed_at",
    )

    # -- list columns ---------------------------------------------------------

    @admin.display(description="key")
    def tenant_key(self, tenant: AbstractTenant) -> str:
        return ", ".join(str(part) for part in tenant.natural_key())

    @admin.display(description="schema", ordering="db_schema")
    def schema_and_database(self, tenant: AbstractTenant) -> str:
        return format_html(
            '<span class="tenancy-schema" style="{}">{}</span><br>'
            '<span class="tenancy-database" style="{}">on {}</span>',
            WRAP_STYLE,
            tenant.db_schema or "-",
            SECONDARY_STYLE,
            tenant.database or "-",
        )

    @admin.display(description="state", ordering="state")
    def state_badge(self, tenant: AbstractTenant) -> str:
        background, colour = BADGE_COLOURS.get(tenant.state, ("#777777", "#ffffff"))
        return format_html(
            '<span class="tenancy-state tenancy-state-{}" data-state="{}" style="{}">{}</span>',
            tenant.state,
            tenant.state,
            BADGE_STYLE.format(background, colour),
            STATE_LABELS.get(tenant.state, tenant.state),
        )

    @admin.display(description="state", ordering="state")
    def state_and_time(self, tenant: AbstractTenant) -> str:
        return format_html(
            '{}<br><span class="tenancy-state-changed" style="{}" title="{}">since {}</span>',
            self.state_badge(tenant),
            SECONDARY_STYLE,
            "when the state last changed",
            date_format(_local(tenant.state_changed_at), "SHORT_DATETIME_FORMAT"),
        )

    @admin.display(description="migrations", ordering="migrations_applied")
    def applied_migrations(self, tenant: AbstractTenant) -> str:
        if tenant.state in UNBUILT or tenant.migrations_digest == plan().digest:
            return str(tenant.migrations_applied)
        return format_html(
            '{} <span class="tenancy-behind" title="{}" style="{}">behind</span>',
            tenant.migrations_applied,
            "Not at the current migrations: run “Migrate now” or tenancy_migrate.",
            BADGE_STYLE.format(*BADGE_COLOURS[TenantState.PENDING]),
        )

    @admin.display(description="last error", ordering="last_error")
    def short_error(self, tenant: AbstractTenant) -> str:
        if not tenant.last_error:
            return ""
        return format_html(
            '<span class="tenancy-error" title="{}" style="{}">{}</span>',
            tenant.last_error,
            WRAP_STYLE,
            Truncator(tenant.last_error).chars(ERROR_CHARS),
        )

    # -- configuration ------------------------------------------------------------

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        return tuple(self.search_fields) or natural_key_fields(self.model)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            return readonly  # a new tenant has no lifecycle to show yet
        return readonly + tuple(f for f in self.lifecycle_readonly_fields if f not in readonly)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # action_location: Django 6.1 (ActionLocation); Django 5.2 has no such argument.
        location = {} if action_location is None else {"action_location": action_location}
        actions = super().get_actions(request, **location)
        if "delete_selected" in actions:
            actions["delete_selected"] = (  # type: ignore[assignment]
                delete_selected_tenants,
                "delete_selected",
                delete_selected_tenants.short_description,  # type: ignore[attr-defined]
            )
        return actions

    # -- actions ----------------------------------------------------------------

    @admin.action(description="Retry provisioning", permissions=["change"])
    def retry_provisioning(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        """Put failed or pending tenants back to pending and enqueue their provisioning."""
        skipped, failed = [], []
        retried: list[AbstractTenant] = []
        for tenant in queryset:
            if tenant.state not in RETRYABLE:
                skipped.append(f"{tenant} ({tenant.state})")
                continue
            try:
                retry(tenant)  # with TENANCY_EAGER, provisions right here
            except Exception as exc:
                logger.exception("retrying the provisioning of %s failed", tenant)
                failed.append(f"{tenant} ({describe(exc)})")
                continue
            tenant.refresh_from_db(fields=["state", "last_error"])
            retried.append(tenant)
        ready = [str(t) for t in retried if t.state == TenantState.READY]
        queued = [str(t) for t in retried if t.state in UNBUILT]
        failed += [f"{t} ({t.last_error})" for t in retried if t.state == TenantState.FAILED]
        self._report(request, messages.SUCCESS, "Provisioned {n} tenant(s): {names}.", ready)
        self._report(
            request,
            messages.SUCCESS,
            "Queued the provisioning of {n} tenant(s) for the workers: {names}.",
            queued,
        )
        self._report(
            request, messages.ERROR, "Provisioning failed for {n} tenant(s): {names}.", failed
        )
        self._report(
            request,
            messages.WARNING,
            "Skipped {n} tenant(s) that are neither failed nor pending: {names}.",
            skipped,
        )

    @admin.action(description="Migrate now", permissions=["change"])
    def migrate_now(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        """Send one migrate task per tenant (run inline with ``TENANCY_EAGER``)."""
        current = plan().digest
        skipped, unsent, failed = [], [], []
        sent: list[AbstractTenant] = []
        for tenant in queryset:
            if tenant.state in UNBUILT:
                skipped.append(f"{tenant} ({tenant.state})")
                continue
            try:
                if not jobs.send(jobs.MIGRATE, tenant.pk, database=tenant.database):
                    unsent.append(str(tenant))
                    continue
            except Exception as exc:
                logger.exception("migrating %s failed", tenant)
                failed.append(f"{tenant} ({describe(exc)})")
                continue
            tenant.refresh_from_db(fields=["state", "last_error", "migrations_digest"])
            sent.append(tenant)
        # With a worker, the tenant's row says nothing yet: only eager runs are done here.
        migrated = [
            conf.eager() and states.is_current(t.state, t.migrations_digest, current) for t in sent
        ]
        done = [str(t) for t, ok in zip(sent, migrated, strict=True) if ok]
        queued = [str(t) for t, ok in zip(sent, migrated, strict=True) if not ok]
        self._report(
            request,
            messages.SUCCESS,
            "Migrated {n} tenant(s) to the current migrations: {names}.",
            done,
        )
        self._report(
            request,
            messages.SUCCESS,
            "Sent the migration of {n} tenant(s) to the workers: {names}.",
            queued,
        )
        self._report(
            request,
            messages.ERROR,
            "Could not reach the broker for {n} tenant(s); run tenancy_migrate later: {names}.",
            unsent,
        )
        self._report(
            request, messages.ERROR, "Migration failed for {n} tenant(s): {names}.", failed
        )
        self._report(
            request,
            messages.WARNING,
            "Skipped {n} tenant(s) not provisioned yet (provisioning builds the current "
            "migrations): {names}.",
            skipped,
        )

    # -- deletion -----------------------------------------------------------------

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
        tenant = context.get("object")
        context["tenancy_drops"] = _schema_drops([tenant]) if tenant is not None else []
        return super().render_delete_form(request, context)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        drops = _schema_drops([obj])
        super().delete_model(request, obj)
        self._report_drops(request, drops)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        drops = _schema_drops(queryset)
        super().delete_queryset(request, queryset)
        self._report_drops(request, drops)

    def _report_drops(self, request: HttpRequest, drops: list[_SchemaDrop]) -> None:
        """Say, once the deletion commits, which schemas were dropped or are queued."""
        alias = shared.database()
        drops = [drop for drop in drops if drop.schema]

        def report() -> None:
            done = set(
                Tombstone.objects.using(alias)
                .filter(
                    schema__in=[drop.schema for drop in drops],
                    tenant_pk__in=[drop.tenant_pk for drop in drops],
                    done_at__isnull=False,
                )
                .values_list("schema", "database")
            )
            names = [(f"{d.schema} on {d.database}", (d.schema, d.database) in done) for d in drops]
            self._report(
                request,
                messages.SUCCESS,
                "Dropped {n} schema(s) with all their data: {names}.",
                [name for name, dropped in names if dropped],
            )
            self._report(
                request,
                messages.SUCCESS,
                "Queued the drop of {n} schema(s) with all their data for the workers "
                "(see Tenant tombstones): {names}.",
                [name for name, dropped in names if not dropped],
            )

        # Registered after the deletion's own drop task, so it runs after it.
        transaction.on_commit(report, using=alias)

    def _report(self, request: HttpRequest, level: int, template: str, names: list[str]) -> None:
        if names:
            self.message_user(request, template.format(n=len(names), names=_listing(names)), level)


class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):
    """The tenant model's ``ModelAdmin``: ``admin.site.register(Customer, TenantAdmin)``."""


class _DropStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "pending drop"), ("dropped", "dropped")]

    def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
        if self.value() == "pending":
            return queryset.filter(done_at__isnull=True)
        if self.value() == "dropped":
            return queryset.filter(done_at__isnull=False)
        return queryset


class TombstoneAdmin(admin.ModelAdmin):
    """Read-only list of deleted tenants' schema drops, done or still pending."""

    list_display = (
        "schema",
        "database",
        "tenant_repr",
        "status",
        "deleted_at",
        "done_at",
        "attempts",
        "short_error",
    )
    list_filter = (_DropStatusFilter, "database")
    search_fields = ("schema", "tenant_repr")
    date_hierarchy = "deleted_at"

    @admin.display(description="status", ordering="done_at")
    def status(self, tomb: Tombstone) -> str:
        return "dropped" if tomb.done_at else "pending drop"

    @admin.display(description="last error")
    def short_error(self, tomb: Tombstone) -> str:
        return Truncator(tomb.last_error).chars(ERROR_CHARS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _local(moment: Any) -> Any:
    """Return ``moment`` in the current time zone (an aware one; a naive one as it is)."""
    return localtime(moment) if is_aware(moment) else moment


def _uses_schemas(database: str) -> bool:
    try:
        return storage.uses_schemas_alias(database)
    except Exception:  # an alias no longer configured: say "schema" all the same
        return True


def _listing(names: list[str], limit: int = 20) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


if not admin.site.is_registered(Tombstone):
    admin.site.register(Tombstone, TombstoneAdmin)

"""``manage.py createtenant name=acme``: sign a tenant up from the shell.

The tenant goes through the same path as a signup in the application (save,
then provisioning enqueued after commit), so a script or an operator gets
exactly what a user would. The fields are validated before anything is
written, so a typo or an unusable key leaves no pending row behind.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models

from tenancy._primitives import placement
from tenancy._primitives.shared import tenant_model as get_tenant_model
from tenancy.exceptions import PlacementError, TenantNotReady
from tenancy.models import AbstractTenant, TenantState

#: Lifecycle fields a caller may set: only where the schema lives is a choice;
#: state and schema name belong to the lifecycle.
SETTABLE_LIFECYCLE_FIELDS = frozenset({"database"})


class Command(BaseCommand):
    help = (
        "Create a tenant of TENANCY_TENANT_MODEL from FIELD=VALUE pairs, e.g. "
        "`createtenant name=acme`. Provisioning runs on the Celery workers (inline with "
        "TENANCY_EAGER); --wait blocks until the tenant is ready."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "pairs",
            nargs="+",
            metavar="FIELD=VALUE",
            help="a field of the tenant model and its value; `database=ALIAS` places the schema",
        )
        parser.add_argument(
            "--wait",
            nargs="?",
            type=_seconds,
            const=math.inf,
            default=None,
            metavar="SECONDS",
            help="wait until the tenant is ready (at most SECONDS, no limit without a value); "
            "exit non-zero if provisioning failed or the time ran out",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print a JSON object"
        )

    def handle(
        self, *args: Any, pairs: list[str], wait: float | None, as_json: bool, **options: Any
    ) -> None:
        model = get_tenant_model()
        tenant = model(**_parse(model, pairs))
        _validate(tenant)
        _save(tenant)
        error = _settle(tenant, wait)
        if as_json:
            self.stdout.write(json.dumps(_describe(tenant), cls=DjangoJSONEncoder))
        else:
            self.stdout.write(
                f"Created tenant {_key(tenant)}: schema {tenant.db_schema} on "
                f"{tenant.database}, state {tenant.state}"
            )
        if error:
            raise CommandError(error)


def _seconds(value: str) -> float:
    """Parse ``--wait``'s value, pointing at the likely mistake when it is a field."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, not {value!r}; put --wait after the FIELD=VALUE pairs"
        ) from None
    if math.isnan(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {value!r}")
    return seconds


def settable_fields(model: type[AbstractTenant]) -> dict[str, models.Field[Any, Any]]:
    """Return the fields ``createtenant`` accepts, by name."""
    return {
        field.name: field
        for field in model._meta.concrete_fields
        if (field.editable or field.name in SETTABLE_LIFECYCLE_FIELDS)
        and not isinstance(field, models.AutoField)
    }


def _parse(model: type[AbstractTenant], pairs: list[str]) -> dict[str, Any]:
    """Turn FIELD=VALUE pairs into model keyword arguments, refusing unknown fields."""
    fields = settable_fields(model)
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"Expected FIELD=VALUE, not {pair!r} (for example name=acme).")
        field = fields.get(name)
        if field is None:
            raise CommandError(
                f"{model._meta.label} has no settable field {name!r}; "
                f"valid fields: {', '.join(sorted(fields))}."
            )
        if field.attname in values:
            raise CommandError(f"Field {name!r} is given twice.")
        # full_clean() converts the strings; an empty value means NULL where allowed.
        values[field.attname] = None if value == "" and field.null else value
    return values


def _validate(tenant: AbstractTenant) -> None:
    """Raise a CommandError listing every problem of ``tenant``, before it is saved."""
    errors: dict[str, list[str]] = {}
    try:
        # Derived now, as save() would, so a key that names no schema is refused
        # with the field errors (save() then checks that the name is free).
        tenant.derive_schema()
    except ValidationError as exc:
        errors["natural key"] = exc.messages
    if tenant.database:  # else placement chooses one when the tenant is saved
        try:
            placement.check(tenant.database)
        except PlacementError as exc:
            errors["database"] = [str(exc)]
    try:
        tenant.full_clean()
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        lines = [f"  {name}: {message}" for name, msgs in errors.items() for message in msgs]
        raise CommandError("Cannot create the tenant:\n" + "\n".join(lines))


def _save(tenant: AbstractTenant) -> None:
    """Save the new tenant; a failed eager provisioning is left for :func:`_settle`."""
    try:
        tenant.save()
    except Exception as exc:
        if not tenant._state.adding:
            # The row is written: TENANCY_EAGER provisions inside save(), and the
            # failure is kept on the tenant and reported like a worker's would be.
            return
        if isinstance(exc, IntegrityError):  # a concurrent signup took the key
            raise CommandError(f"Cannot create the tenant: {exc}") from exc
        raise


def _settle(tenant: AbstractTenant, wait: float | None) -> str:
    """Re-read the tenant (waiting for it if asked); return the error to exit with, or ""."""
    tenant.refresh_from_db()
    if wait is not None:
        try:
            tenant.wait_until_ready(None if math.isinf(wait) else wait)
        except TenantNotReady as exc:
            return str(exc)
    if tenant.state == TenantState.FAILED:
        return f"Provisioning tenant {tenant} failed: {tenant.last_error}"
    return ""


def _key(tenant: AbstractTenant) -> str:
    return ", ".join(str(part) for part in tenant.natural_key())


def _describe(tenant: AbstractTenant) -> dict[str, Any]:
    return {
        "pk": tenant.pk,
        "natural_key": list(tenant.natural_key()),
        "schema": tenant.db_schema,
        "database": tenant.database,
        "state": tenant.state,
        "last_error": tenant.last_error,
    }

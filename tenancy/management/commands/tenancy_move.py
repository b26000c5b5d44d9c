"""``manage.py tenancy_move KEY ALIAS``: move a tenant's schema to another database."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from tenancy._orchestration.move import move_tenant
from tenancy._primitives import shared
from tenancy._primitives.lookup import lookup_field_or_none
from tenancy.exceptions import TenancyError


class Command(BaseCommand):
    help = (
        "Move a tenant (by schema, or by the TENANCY_TENANT_LOOKUP_FIELD value) to another "
        "database alias of TENANCY_DATABASES. The tenant is read-only while it moves; a move "
        "that fails leaves it where it was."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "key",
            help="the tenant's schema or lookup value (e.g. its name); refused if it names "
            "two different tenants (one's schema, another's name): then use --pk",
        )
        parser.add_argument("--pk", action="store_true", help="KEY is the tenant's primary key")
        parser.add_argument("alias", help="the database alias to move it to")
        parser.add_argument("--json", action="store_true", help="Print a JSON report.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = _find(options["key"], by_pk=options["pk"])
        try:
            report = move_tenant(tenant, options["alias"])
        except TenancyError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.__dict__))
            return
        rows = sum(report.rows.values())
        self.stdout.write(
            f"Moved {report.schema} from {report.source} to {report.target}: "
            f"{rows} row(s) in {len(report.rows)} table(s), verified, in {report.seconds:.1f} s."
        )


def _find(key: str, *, by_pk: bool) -> Any:
    """Return the one tenant ``key`` names; refuse a key that names none, or two."""
    model = shared.tenant_model()
    tenants = shared.tenants()
    if by_pk:
        tenant = tenants.filter(pk=key).first()
        if tenant is None:
            raise CommandError(f"No tenant has the primary key {key!r}.")
        return tenant
    field = lookup_field_or_none(model) or "db_schema"
    lookup = Q(db_schema=key)
    if any(f.name == field for f in model._meta.concrete_fields):
        lookup |= Q(**{field: key})
    found = list(tenants.filter(lookup)[:3])
    if not found:
        raise CommandError(f"No tenant has the schema or {field} {key!r}.")
    if len(found) > 1:
        names = ", ".join(f"pk {t.pk} (schema {t.db_schema})" for t in found)
        raise CommandError(
            f"{key!r} names more than one tenant ({names}): one's schema is another's "
            f"{field}. Nothing was moved; name the tenant by its primary key with --pk."
        )
    return found[0]

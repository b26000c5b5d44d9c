"""``manage.py tenancy_status``: every tenant's lifecycle at a glance.

The first place to look when a tenant is not ready: its state and last
error are on the row, and the totals show whether a whole fleet is stuck
(no worker) or one tenant is (its error).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.db.models import Count, QuerySet

from tenancy._migrating.plan import plan
from tenancy._primitives import citus, shared
from tenancy.models import AbstractTenant, TenantState, Tombstone

#: Longest last error shown in the table; --json carries it whole.
ERROR_WIDTH = 60
COLUMNS = ("key", "schema", "database", "state", "migrations", "last error")
#: Added after "database" when a tenant database is a Citus coordinator.
CITUS_COLUMNS = ("node", "size")


def applied_migrations(tenant: AbstractTenant) -> str | None:
    """Return the tenant's applied migrations as ``N`` (current) or ``N (behind)``.

    Read from the tenant row (one query for the fleet), not from each schema.
    """
    if not tenant.migrations_digest:
        return None
    if tenant.migrations_digest == plan().digest:
        return str(tenant.migrations_applied)
    return f"{tenant.migrations_applied} (behind)"


class Command(BaseCommand):
    help = (
        "List every tenant (key, schema, database, state, applied migrations, last error), "
        "then the number of tenants in each state and of drops not done yet."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--state",
            choices=TenantState.values,
            help="only list tenants in this state (the totals still count every tenant)",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print a JSON document: tenants, totals and pending_drops",
        )

    def handle(self, *args: Any, state: str | None, as_json: bool, **options: Any) -> None:
        alias = shared.database()
        tenants = shared.tenants(alias).order_by("pk")
        totals = _totals(tenants)
        drops = Tombstone.objects.using(alias).filter(done_at__isnull=True).count()
        rows = [_row(tenant) for tenant in (tenants.filter(state=state) if state else tenants)]
        on_citus = _add_placements(rows)
        databases = dict(
            tenants.order_by("database").values_list("database").annotate(n=Count("pk"))
        )
        if as_json:
            document = {
                "tenants": rows,
                "totals": totals,
                "databases": databases,
                "pending_drops": drops,
            }
            self.stdout.write(json.dumps(document, cls=DjangoJSONEncoder, indent=2))
            return
        self.stdout.write(_table(rows, on_citus))
        if len(databases) > 1:
            per = ", ".join(f"{alias}: {count}" for alias, count in databases.items())
            self.stdout.write(f"tenants per database: {per}")
        total = sum(totals.values())
        counts = ", ".join(f"{count} {name}" for name, count in totals.items())
        self.stdout.write(
            f"{total} tenant{'' if total == 1 else 's'}: {counts}; drops not done: {drops}"
        )


def _totals(tenants: QuerySet[Any]) -> dict[str, int]:
    """Count tenants per state, every state present (zero included)."""
    totals = dict.fromkeys(TenantState.values, 0)
    for row in tenants.order_by().values("state").annotate(count=Count("pk")):
        totals[row["state"]] = row["count"]
    return totals


def _row(tenant: AbstractTenant) -> dict[str, Any]:
    return {
        "pk": tenant.pk,
        "natural_key": list(tenant.natural_key()),
        "schema": tenant.db_schema,
        "database": tenant.database,
        "state": tenant.state,
        "state_changed_at": tenant.state_changed_at,
        "migrations": applied_migrations(tenant),
        "last_error": tenant.last_error,
    }


def _add_placements(rows: list[dict[str, Any]]) -> bool:
    """Add where Citus keeps each tenant's schema (``placement``: node and size in
    bytes, None before its tables exist) to the rows of tenants on a Citus database;
    return whether any database is one."""
    on_citus = False
    for alias in sorted({row["database"] for row in rows}):
        if alias not in connections or not citus.is_citus(alias):
            continue
        on_citus = True
        mine = [row for row in rows if row["database"] == alias]
        found = citus.placements([row["schema"] for row in mine if row["schema"]], alias)
        for row in mine:
            where = found.get(row["schema"])
            row["placement"] = (
                {"node": f"{where.node}:{where.port}", "size": where.size} if where else None
            )
    return on_citus


def _table(rows: list[dict[str, Any]], on_citus: bool = False) -> str:
    """Lay the rows out in aligned columns under a header."""
    columns = COLUMNS[:3] + CITUS_COLUMNS + COLUMNS[3:] if on_citus else COLUMNS
    cells = [[name.upper() for name in columns]]
    for row in rows:
        line = [
            ", ".join(str(part) for part in row["natural_key"]),
            row["schema"] or "-",
            row["database"],
            row["state"],
            row["migrations"] or "-",
            _shorten(row["last_error"]),
        ]
        if on_citus:
            where = row.get("placement")
            line[3:3] = [where["node"], _size(where["size"])] if where else ["-", "-"]
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _size(size: int) -> str:
    """Return a size in bytes as PostgreSQL's pg_size_pretty() does (bytes, kB, MB, GB, TB)."""
    units = ("bytes", "kB", "MB", "GB", "TB")
    step = 0
    while size >= 10240 and step < len(units) - 1:
        size = (size + 512) // 1024
        step += 1
    return f"{size} {units[step]}"


def _shorten(error: str) -> str:
    """Return the error on one line, cut to ``ERROR_WIDTH`` characters."""
    flat = " ".join(error.split())
    return flat if len(flat) <= ERROR_WIDTH else flat[: ERROR_WIDTH - 3] + "..."

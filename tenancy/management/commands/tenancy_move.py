"""``manage.py tenancy_move KEY ALIAS``: move a tenant's schema to another database."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy._orchestration.move import move_tenant
from tenancy._orchestration.node_move import move_to_node
from tenancy.exceptions import TenancyError
from tenancy.management.tenant_keys import find_tenant


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
        parser.add_argument(
            "alias", nargs="?", help="the database alias to move it to (not with --node)"
        )
        parser.add_argument(
            "--node",
            metavar="HOST:PORT",
            help="Citus: move the tenant to this worker node of its cluster, online "
            "(citus_schema_move); its database alias stays the same",
        )
        parser.add_argument(
            "--block-writes",
            action="store_true",
            help="with --node: refuse the tenant's writes while it copies instead of moving "
            "online (needed where a node has synchronous_commit = off)",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON report.")

    def handle(self, *args: Any, **options: Any) -> None:
        if (options["alias"] is None) == (options["node"] is None):
            raise CommandError("Name either a database ALIAS or a Citus node with --node.")
        tenant = find_tenant(options["key"], by_pk=options["pk"])
        if options["node"] is not None:
            self._move_to_node(
                tenant,
                options["node"],
                block_writes=options["block_writes"],
                as_json=options["json"],
            )
            return
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

    def _move_to_node(self, tenant: Any, node: str, *, block_writes: bool, as_json: bool) -> None:
        try:
            report = move_to_node(tenant, node, block_writes=block_writes)
        except TenancyError as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(report.__dict__))
            return
        self.stdout.write(
            f"Moved {report.schema} from node {report.source} to {report.target} "
            f"({report.size} bytes), {'online' if report.online else 'writes blocked'}, "
            f"in {report.seconds:.1f} s."
        )

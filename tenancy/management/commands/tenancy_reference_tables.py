"""``manage.py tenancy_reference_tables``: make the shared tables tenants reference
reference tables on Citus.

A tenant's tables live on one Citus worker node, and their foreign keys to
shared tables (``auth_user``, say) need those tables on every node. Run it
after ``migrate`` (and after any migration that adds such a shared model);
it converts only what is not a reference table yet, so it is safe to repeat.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction

from tenancy._classes.shared_references import missing_reference_tables
from tenancy._primitives import citus, shared


class Command(BaseCommand):
    help = (
        "On a Citus coordinator, make every shared table that tenant tables reference "
        "(and every shared table those reference) a reference table. Does nothing on "
        "plain PostgreSQL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=None,
            help="the database alias (default: the shared database, where shared tables live)",
        )
        parser.add_argument(
            "--sql", action="store_true", help="Print the SQL instead of running it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"] or shared.database()
        if alias not in connections:
            raise CommandError(f"No database alias {alias!r} in DATABASES.")
        if not citus.is_citus(alias):
            self.stdout.write(f"{alias!r} is not a Citus database: nothing to do.")
            return
        tables = missing_reference_tables(alias)
        if not tables:
            self.stdout.write(
                "Every shared table that tenant tables reference is a reference table."
            )
            return
        for table in tables:
            sql = citus.reference_table_sql(table)
            if options["sql"]:
                self.stdout.write(sql)
                continue
            with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                cursor.execute(sql)
            self.stdout.write(f"{table}: now a reference table")

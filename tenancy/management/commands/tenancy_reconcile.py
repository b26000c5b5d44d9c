"""``manage.py tenancy_reconcile``: re-enqueue lifecycle work that nothing will finish.

The periodic task does the same on Celery beat; the command is for a broker
outage just repaired, a deployment without beat, or an operator who has
fixed the cause of failures (``--retry-failed``) and wants them retried now.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from tenancy._orchestration import drift, reconcile


class Command(BaseCommand):
    help = (
        "Send again what no worker will finish: pending tenants, provisioning tenants that "
        "no worker holds, drops not done, interrupted moves (rolled back or finished). Run "
        "by hand it acts on everything no worker holds (--grace 0); the periodic task spares "
        "what changed in the last TENANCY_RECONCILE_GRACE seconds. --retry-failed also "
        "retries every failed tenant."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            metavar="SECONDS",
            help="spare what changed state in the last SECONDS, as its task is probably "
            "still queued (default 0: act on everything that no worker holds)",
        )
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="also put every failed tenant back to pending and enqueue its provisioning",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print a JSON object"
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="only report drift: schemas without a tenant, ready tenants without a "
            "schema, stale pooled schemas, drops not done",
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="repair the drift that is safe to repair (reprovision missing schemas, drop "
            "stale pooled schemas, resend drops); orphan schemas are only reported",
        )
        parser.add_argument(
            "--adopt-legacy",
            action="store_true",
            help="after upgrading from an earlier django-tenancy: give its tenants an "
            "incarnation and mark their schemas (and roles) as theirs; only unmarked schemas "
            "that hold the library's tenancy_migrations table are marked",
        )
        parser.add_argument(
            "--drop-orphans",
            action="store_true",
            help="with --repair: also drop schemas that no tenant row names",
        )

    def handle(
        self,
        *args: Any,
        grace: float | None,
        retry_failed: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        if options["adopt_legacy"]:
            self._adopt(as_json)
            return
        if options["check"] or options["repair"]:
            self._drift(as_json, repair=options["repair"], drop=options["drop_orphans"])
            return
        try:
            report = reconcile.reconcile(grace=0.0 if grace is None else grace)
        except Exception as exc:
            # With TENANCY_EAGER the work runs inline, so a failure surfaces here.
            raise CommandError(
                f"Reconciling stopped at {type(exc).__name__}: {exc}; "
                "see `manage.py tenancy_status`."
            ) from exc
        retried, errors = reconcile.retry_failed() if retry_failed else ([], {})
        for pk, error in errors.items():
            self.stderr.write(f"Retrying tenant {pk} failed again: {error}")
        if as_json:
            document = {
                "pending": report.pending,
                "stuck": report.stuck,
                "tombstones": report.tombstones,
                "unnamable": report.unnamable,
                "operations": report.operations,
                "left_alone": {
                    "younger_pending": report.young_pending,
                    "younger_drops": report.young_drops,
                    "held": report.held,
                },
                "unsent": report.unsent,
                "retried": retried,
                "retry_errors": {str(pk): error for pk, error in errors.items()},
            }
            self.stdout.write(json.dumps(document, cls=DjangoJSONEncoder))
            return
        summary = str(report)
        if retry_failed:
            summary += f", retried {len(retried)} failed ({len(errors)} failed again)"
        self.stdout.write(summary)
        if options["verbosity"] >= 2:
            for label, ids in [
                ("pending", report.pending),
                ("stuck", report.stuck),
                ("drops (tombstones)", report.tombstones),
                ("retried", retried),
            ]:
                self.stdout.write(f"  {label}: {', '.join(map(str, ids)) or '-'}")

    def _adopt(self, as_json: bool) -> None:
        adopted = drift.adopt_legacy()
        if as_json:
            self.stdout.write(json.dumps(adopted.__dict__))
            return
        self.stdout.write(
            f"gave {len(adopted.named)} tenant(s) an incarnation, marked {len(adopted.marked)} "
            f"schema(s) and {len(adopted.pooled)} pooled schema(s)"
        )
        for line in adopted.left:
            self.stdout.write(f"  left unmarked: {line}")

    def _drift(self, as_json: bool, *, repair: bool, drop: bool) -> None:
        found = drift.repair(drop_orphans=drop) if repair else drift.find()
        if as_json:
            self.stdout.write(json.dumps(found.__dict__))
        else:
            for kind, names in found.__dict__.items():
                self.stdout.write(f"{kind.replace('_', ' ')}: {', '.join(names) or '-'}")
            if repair:
                self.stdout.write("repaired what is safe to repair")

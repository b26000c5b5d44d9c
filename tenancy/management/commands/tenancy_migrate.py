"""``manage.py tenancy_migrate``: bring every tenant to the current migrations."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy import conf, migrator, rollout


class Command(BaseCommand):
    help = (
        "Apply the tenant models' migrations to every tenant that is not current, through "
        "the Celery workers (bounded by --concurrency), and wait for all of them. Exits "
        "non-zero listing every tenant that failed; run it again to resume. Run `migrate` "
        "first: it applies the shared models' migrations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-wait", action="store_true", help="Only enqueue one task per tenant, then exit."
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Migrate in this process, one tenant after another, without a worker.",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=8,
            help="Tenants migrated at the same time through the workers (default 8).",
        )
        parser.add_argument(
            "--timeout", type=float, default=None, help="Give up waiting after SECONDS."
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=rollout.RESEND_GRACE,
            help="Send tenants again when no worker has shown signs of working on them for "
            "SECONDS (a dead worker's messages wait in the broker; "
            f"default {rollout.RESEND_GRACE:g}).",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON report.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["grace"] < 0:
            raise CommandError("--grace must not be negative.")
        migrator.forget_plan()  # this process may have imported migrations before they changed
        the_plan = migrator.plan()
        if options["no_wait"]:
            count = rollout.enqueue_all()
            self._say(options, {"enqueued": count}, f"Enqueued {count} tenant migration(s).")
            return
        progress = _Progress(self.stdout, quiet=options["json"] or options["verbosity"] == 0)
        if options["inline"] or conf.eager():
            report = rollout.run_inline(progress)
        else:
            report = rollout.run(
                concurrency=options["concurrency"],
                progress=progress,
                timeout=options["timeout"],
                grace=options["grace"],
            )
        progress.close()
        summary = {
            "plan": the_plan.digest,
            "migrations": len(the_plan.keys),
            "migrated": len(report.succeeded),
            "failed": [
                {"tenant": o.name, "schema": o.schema, "database": o.database, "error": o.detail}
                for o in report.failed
            ],
            "databases": report.by_database(),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(
                f"{len(report.succeeded)} tenant(s) migrated, {len(report.failed)} failed "
                f"({len(the_plan.keys)} tenant migration(s) in the plan)."
            )
            databases = report.by_database()
            if len(databases) > 1:
                for alias, counts in sorted(databases.items()):
                    self.stdout.write(
                        f"  {alias}: {counts['migrated']} migrated, {counts['failed']} failed"
                    )
        if report.failed:
            lines = "\n".join(f"  {o.name} ({o.schema}): {o.detail}" for o in report.failed)
            raise CommandError(
                f"{len(report.failed)} tenant(s) failed to migrate:\n{lines}\n"
                "Fix the cause and run tenancy_migrate again: migrated tenants are skipped."
            )

    def _say(self, options: dict[str, Any], data: dict[str, Any], text: str) -> None:
        self.stdout.write(json.dumps(data) if options["json"] else text)


class _Progress:
    """A progress bar on a terminal, one line per tenant otherwise."""

    WIDTH = 30

    def __init__(self, out: Any, *, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = bool(getattr(out, "isatty", lambda: False)()) and out._out is sys.stdout
        self.drawn = False

    def __call__(self, outcome: rollout.Outcome, done: int, total: int) -> None:
        if self.quiet:
            return
        if not self.tty:
            status = "ok" if outcome.ok else f"FAILED: {outcome.detail}"
            self.out.write(f"[{done}/{total}] {outcome.name} ({outcome.schema}) {status}")
            return
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.out.write(f"\r[{bar}] {done}/{total} {outcome.name[:30]:<30}", ending="")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.out.write("")

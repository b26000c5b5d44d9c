"""``manage.py tenancy_migrate``: bring every tenant to the current migrations."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy._migrating.plan import forget_plan, plan
from tenancy._orchestration import rollout
from tenancy._primitives import conf


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
            "--timeout",
            type=float,
            default=rollout.DEFAULT_TIMEOUT,
            help="Give up waiting after SECONDS; the tenants not done then are reported as "
            f"failed (default {rollout.DEFAULT_TIMEOUT:g}).",
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
        if options["timeout"] is not None and options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds.")
        forget_plan()  # this process may have imported migrations before they changed
        the_plan = plan()
        if options["no_wait"]:
            self._enqueue_only(options)
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
            "other_versions": report.other_versions,
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
        if report.other_versions:
            raise CommandError(_other_versions(report))
        if report.failed:
            lines = "\n".join(f"  {o.name} ({o.schema}): {o.detail}" for o in report.failed)
            raise CommandError(
                f"{len(report.failed)} tenant(s) failed to migrate:\n{lines}\n"
                "Fix the cause and run tenancy_migrate again: migrated tenants are skipped."
            )

    def _enqueue_only(self, options: dict[str, Any]) -> None:
        """``--no-wait``: send the batches and report what could not be sent."""
        result = rollout.enqueue_all()
        unsent = len(result.unsent)
        if options["json"]:
            self.stdout.write(json.dumps({"enqueued": result.sent, "unsent": unsent}))
        else:
            self.stdout.write(f"Enqueued {result.sent} tenant migration(s).")
        if unsent:
            raise CommandError(
                f"Could not send the migration of {unsent} tenant(s): the broker could not be "
                "reached. They are still behind; run tenancy_migrate again once it is back."
            )


def _other_versions(report: rollout.Report) -> str:
    workers = "\n".join(
        f"  {worker}: migration plan {digest[:12]}"
        for worker, digest in sorted(report.other_versions.items())
    )
    count = len(report.other_versions)
    return (
        f"{count} worker(s) run another version of the code than this one (migration plan "
        f"{report.digest[:12]}), and migrated nothing:\n{workers}\n"
        "Restart them on the new code, then run tenancy_migrate again."
    )


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

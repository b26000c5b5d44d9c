"""Command line of the example project: ``python -m worker demo``."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
The example project of django-tenancy: a SaaS whose tenants are customers.

commands:
  demo    sign up three tenants, watch a Celery worker build them, use their
          models, delete one; runs on SQLite with an in-process worker and
          needs no services (DATABASE_URL / CELERY_BROKER_URL switch to yours)

The project's own Celery worker runs with `celery -A worker worker -l info`.
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        usage="%(prog)s [-h] {demo}",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", choices=["demo"], help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 0
    # Imported only now: the demo sets the environment before Django loads settings.
    from worker import demo

    return demo.main()


if __name__ == "__main__":
    sys.exit(main())

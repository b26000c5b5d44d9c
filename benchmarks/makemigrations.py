"""Regenerate the benchmark apps' committed migrations: ``python -m benchmarks.makemigrations``.

The crm history is made the way a project makes it: ``makemigrations`` run
once per stage of the workload (0001 initial, then one AddField each), for
the django-tenancy build and the django-tenants build alike. The generated
files are committed; this tool only exists to show, and redo, how.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.workload import FINAL_STAGE, STAGE_ENV

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (settings module, shared app label, crm migrations package) of each build.
BUILDS = [
    ("benchmarks.settings.tenancy", "orgs", HERE / "crm_tenancy" / "migrations"),
    ("benchmarks.settings.tenants", "customers", HERE / "crm_tenants" / "migrations"),
]


def makemigrations(settings: str, stage: int, *labels: str) -> None:
    """Run ``manage.py makemigrations LABELS`` with the models at ``stage``."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, STAGE_ENV: str(stage)}
    env.pop("BENCH_CRM_MIGRATIONS", None)
    subprocess.run(
        [sys.executable, "-m", "django", "makemigrations", *labels], cwd=ROOT, env=env, check=True
    )


def clear(package: Path) -> None:
    """Delete a migrations package's migrations, keeping its ``__init__.py``."""
    for path in package.glob("0*.py"):
        path.unlink()
    shutil.rmtree(package / "__pycache__", ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="delete existing migrations first")
    args = parser.parse_args(argv)
    for settings, shared, package in BUILDS:
        existing = list(package.glob("0*.py"))
        if existing and not args.force:
            sys.exit(f"{package} already has migrations; pass --force to regenerate them")
        clear(package)
        clear(HERE / f"{shared}_{settings.rsplit('.', 1)[1]}" / "migrations")
        makemigrations(settings, FINAL_STAGE, shared)
        for stage in range(FINAL_STAGE + 1):
            makemigrations(settings, stage, "crm")


if __name__ == "__main__":
    main()

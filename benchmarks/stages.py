"""Migration packages that stop early, so a process can run at an earlier stage.

The crm app's history is ten migrations; a fleet provisioned "before the last
AddField" needs processes that see only the first nine, as an older deploy
would. Django reads every module of a migrations package, so the harness
copies the first ``stage + 1`` migrations into a package of its own in a
temporary directory and points ``MIGRATION_MODULES`` at it
(``BENCH_CRM_MIGRATIONS``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The committed migrations of each build.
PACKAGES = {
    "tenancy": HERE / "crm_tenancy" / "migrations",
    "tenants": HERE / "crm_tenants" / "migrations",
    "raw": HERE / "crm_tenants" / "migrations",
}


@dataclass(frozen=True)
class StagedMigrations:
    """Where a process finds the crm migrations of one stage."""

    #: Directory to put on PYTHONPATH ("" for the committed package).
    path: str
    #: Value of BENCH_CRM_MIGRATIONS ("" for the committed package).
    module: str

    def env(self) -> dict[str, str]:
        return {"BENCH_CRM_MIGRATIONS": self.module} if self.module else {}


def migrations_at(build: str, stage: int, final: int, workdir: Path) -> StagedMigrations:
    """Return the crm migrations of ``build`` up to ``stage`` (all of them at ``final``)."""
    if stage == final:
        return StagedMigrations("", "")
    name = f"crm_migrations_{build}_{stage}"
    target = workdir / name
    if not target.exists():
        target.mkdir(parents=True)
        (target / "__init__.py").write_text("")
        for path in sorted(PACKAGES[build].glob("0*.py"))[: stage + 1]:
            shutil.copy(path, target / path.name)
    return StagedMigrations(str(workdir), name)


def migration_names(build: str) -> list[str]:
    """Return the names of ``build``'s committed crm migrations, in order."""
    return sorted(path.stem for path in PACKAGES[build].glob("0*.py"))

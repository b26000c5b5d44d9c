"""The harness side of django-tenants, in the same order as django-tenancy's.

Signups (inline provisioning) and in-process benchmarks on one database; a
fleet on a second one, created at stage 8 by two signup processes at once,
then the last AddField applied by ``migrate_schemas`` with the
multiprocessing executor, again with nothing to apply, then rolled back
(not measured) and applied by the standard executor.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import Context
from benchmarks.run_tenancy import _columns
from benchmarks.services import Database, collect
from benchmarks.stages import migration_names
from benchmarks.workload import FINAL_STAGE

SUITE = "benchmarks.suite_tenants"
#: Processes of django-tenants' burst and multiprocessing executor: the machine's 2 cores.
PROCESSES = 2


def run(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ctx.wants("signup") or ctx.wants("inprocess"):
        out.update(_signups_and_inprocess(ctx))
    if ctx.wants("fleet"):
        out.update(_fleet(ctx))
    return out


def _signups_and_inprocess(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    out: dict[str, Any] = {}
    db = Database(ctx.database_name("tenants", "signup")).create()
    env = ctx.environment("tenants", db.name)
    try:
        env.check_migrations()
        env.django("migrate_schemas", "--shared", "-v0")
        count = sizes.signups if ctx.wants("signup") else 5
        ctx.say(f"django-tenants: {count} signups, one at a time (inline provisioning)")
        out["signups"] = env.python(
            SUITE, "signups", "--count", str(count), "--warmup", str(sizes.warmup)
        )
        if ctx.wants("inprocess"):
            ctx.say("django-tenants: in-process (set_tenant, queries per request)")
            out["inprocess"] = env.python(
                SUITE, "inprocess", "--repeat", str(sizes.repeat), "--number", str(sizes.number),
                "--requests", str(sizes.requests),
            )  # fmt: skip
    finally:
        db.drop()
    return out


def _fleet(ctx: Context) -> dict[str, Any]:
    n = ctx.sizes.fleet
    out: dict[str, Any] = {}
    db = Database(ctx.database_name("tenants", "fleet")).create()
    before = ctx.environment("tenants", db.name, FINAL_STAGE - 1)
    after = ctx.environment("tenants", db.name)
    try:
        after.check_migrations()
        before.django("migrate_schemas", "--shared", "-v0")
        ctx.say(
            f"django-tenants: burst of {n} signups in {PROCESSES} processes "
            f"(stage {FINAL_STAGE - 1})"
        )
        shares = [n // PROCESSES + (1 if i < n % PROCESSES else 0) for i in range(PROCESSES)]
        starts = [sum(shares[:i]) for i in range(PROCESSES)]
        processes = [
            before.spawn(SUITE, "burst", "--start", str(start), "--count", str(share))
            for start, share in zip(starts, shares, strict=True)
        ]
        parts = [collect(p) for p in processes]
        out["burst"] = {
            "count": n,
            "wall_s": max(p["ended"] for p in parts) - min(p["started"] for p in parts),
            "ready_ms": [ms for p in parts for ms in p["ready_ms"]],
        }
        executor = "--executor=multiprocessing"
        ctx.say(f"django-tenants: migrate_schemas (multiprocessing), one AddField on {n} tenants")
        out["add_field_multiprocessing"] = {
            "seconds": after.django("migrate_schemas", "--tenant", executor, "-v0")[0]
        }
        _columns(db, n)
        ctx.say(
            f"django-tenants: migrate_schemas (multiprocessing) with nothing to apply "
            f"on {n} tenants"
        )
        out["noop_multiprocessing"] = {
            "seconds": after.django("migrate_schemas", "--tenant", executor, "-v0")[0]
        }
        previous = migration_names("tenants")[-2]
        ctx.say(f"django-tenants: rolling the AddField back to {previous} (not measured)")
        out["rollback_multiprocessing"] = {
            "seconds": after.django(
                "migrate_schemas", "--tenant", executor, "-v0", "crm", previous
            )[0]
        }
        _columns(db, 0)
        ctx.say(f"django-tenants: migrate_schemas (standard), one AddField on {n} tenants")
        out["add_field_standard"] = {
            "seconds": after.django("migrate_schemas", "--tenant", "-v0")[0]
        }
        _columns(db, n)
    finally:
        db.drop()
    return out

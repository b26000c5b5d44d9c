"""The harness side of django-tenancy: databases, workers, and the order of the phases.

Signups and in-process benchmarks run on one database at the final state.
The fleet runs on a second one: provisioned by a burst of signups at stage 8
(before the last AddField) through workers of that stage, then workers of
the final stage are started, as a deploy would, and ``tenancy_migrate``
applies the AddField, then runs again with nothing to apply.
The scale-out comparison runs the same burst of signups with tenants on one
database, then spread over two, each database with its own queue and worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchmarks.context import Context
from benchmarks.services import Database, Worker
from benchmarks.workload import FINAL_STAGE

SUITE = "benchmarks.suite_tenancy"
#: Schemas of the warm pool when it is measured (refilled between two signups).
POOL_SIZE = 3


@dataclass(frozen=True)
class Layout:
    """Where the scale-out burst places tenants, and the workers that provision them."""

    key: str
    name: str
    databases: tuple[str, ...]
    #: Worker processes of the worker that consumes each database's queue.
    processes: int


#: One database against two: with the same two worker processes in all (what
#: spreading the catalog alone changes), and with a two-process worker per
#: database (the layout docs/scaling.md recommends: workers sized per server).
LAYOUTS = (
    Layout("one_database", "1 database, its worker with 2 processes", ("default",), 2),
    Layout(
        "two_databases",
        "2 databases, a worker with 1 process each (same 2 processes)",
        ("default", "tenants2"),
        1,
    ),
    Layout(
        "two_databases_scaled",
        "2 databases, a worker with 2 processes each",
        ("default", "tenants2"),
        2,
    ),
)


def run_signups(ctx: Context) -> dict[str, Any]:
    """Signups one at a time (with and without the pool) and the in-process benchmarks."""
    if not (ctx.wants("signup") or ctx.wants("inprocess")):
        return {}
    return _signups_and_inprocess(ctx)


def run_fleet(ctx: Context) -> dict[str, Any]:
    """The burst, then the AddField and the no-op migration on the same fleet."""
    return _fleet(ctx) if ctx.wants("fleet") else {}


def run_scaleout(ctx: Context) -> dict[str, Any]:
    """The same burst of signups on each of :data:`LAYOUTS`, each on fresh databases.

    The layouts take turns, round after round, so that a machine whose speed
    drifts (other processes, thermal limits) slows each layout alike.
    """
    if not ctx.wants("scaleout"):
        return {}
    bursts: dict[str, list[dict[str, Any]]] = {layout.key: [] for layout in LAYOUTS}
    for _ in range(ctx.sizes.scaleout_rounds):
        for layout in LAYOUTS:
            bursts[layout.key].append(_scaleout_burst(ctx, layout))
    return {"scaleout": bursts}


def _scaleout_burst(ctx: Context, layout: Layout) -> dict[str, Any]:
    n = ctx.sizes.scaleout
    shared = Database(ctx.database_name("tenancy", "scale")).create()
    second = Database(ctx.database_name("tenancy", "scale2")).create()
    pattern = f"bench-tenancy-{ctx.tag}-{{database}}"
    env = ctx.environment("tenancy", shared.name).with_(
        BENCH_PG_NAME_2=second.name,
        BENCH_TENANCY_DATABASES=",".join(layout.databases),
        BENCH_QUEUE=pattern,
    )
    workers: list[Worker] = []
    try:
        env.django("migrate", "-v0")
        for alias in layout.databases:
            queue = pattern.format(database=alias)
            workers.append(Worker(env, concurrency=layout.processes, queue=queue).start())
        ctx.say(f"django-tenancy: burst of {n} signups, {layout.name}")
        result = env.python(SUITE, "burst", "--count", str(n))
    finally:
        for worker in workers:
            worker.stop()
        shared.drop()
        second.drop()
    if result["schemas"] != result["by_database"]:
        raise RuntimeError(
            f"{layout.key}: tenants per database {result['by_database']} "
            f"but schemas per database {result['schemas']}"
        )
    return {**result, "layout": layout.name, "processes": layout.processes * len(workers)}


def _signups_and_inprocess(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    out: dict[str, Any] = {}
    db = Database(ctx.database_name("tenancy", "signup")).create()
    env = ctx.environment("tenancy", db.name)
    worker: Worker | None = None
    try:
        env.check_migrations()
        env.django("migrate", "-v0")
        worker = Worker(env).start()
        count = sizes.signups if ctx.wants("signup") else 5
        ctx.say(f"django-tenancy: {count} signups, one at a time, through a worker")
        out["signups"] = env.python(
            SUITE, "signups", "--count", str(count), "--warmup", str(sizes.warmup), "--raw-pairs"
        )
        if ctx.wants("inprocess"):
            ctx.say("django-tenancy: in-process (for_tenant, cold build, memory, queries)")
            out["inprocess"] = env.python(
                SUITE, "inprocess",
                "--repeat", str(sizes.repeat), "--number", str(sizes.number),
                "--cold", str(sizes.cold), "--memory", str(sizes.memory),
                "--cache-size", str(sizes.cache_size),
                "--pass-tenants", str(sizes.pass_tenants), "--requests", str(sizes.requests),
            )  # fmt: skip
        if ctx.wants("signup"):
            worker.stop()
            pooled = env.with_(BENCH_POOL_SIZE=str(POOL_SIZE))
            worker = Worker(pooled).start()
            ctx.say(f"django-tenancy: {count} signups with a warm pool of {POOL_SIZE} schemas")
            out["pool_signups"] = pooled.python(
                SUITE, "signups", "--count", str(count), "--warmup", str(sizes.warmup),
                "--prefix", "p",
            )  # fmt: skip
    finally:
        if worker is not None:
            worker.stop()
        db.drop()
    return out


def _fleet(ctx: Context) -> dict[str, Any]:
    n = ctx.sizes.fleet
    out: dict[str, Any] = {}
    db = Database(ctx.database_name("tenancy", "fleet")).create()
    before = ctx.environment("tenancy", db.name, FINAL_STAGE - 1)
    after = ctx.environment("tenancy", db.name)
    worker: Worker | None = None
    try:
        after.check_migrations()
        before.django("migrate", "-v0")
        worker = Worker(before).start()
        ctx.say(
            f"django-tenancy: burst of {n} signups, 2 worker processes (stage {FINAL_STAGE - 1})"
        )
        out["burst"] = before.python(SUITE, "burst", "--count", str(n))
        worker.stop()
        worker = Worker(after).start()  # the deploy of the last migration
        ctx.say(f"django-tenancy: tenancy_migrate, one AddField on {n} tenants, through workers")
        seconds, output = after.django("tenancy_migrate", "--json")
        out["add_field"] = {"seconds": seconds, "report": _json(output)}
        out["add_field"]["columns"] = _columns(db, n)
        ctx.say(f"django-tenancy: tenancy_migrate with nothing to apply on {n} tenants")
        seconds, output = after.django("tenancy_migrate", "--json")
        out["noop"] = {"seconds": seconds, "report": _json(output)}
    finally:
        if worker is not None:
            worker.stop()
        db.drop()
    return out


def _json(output: str) -> Any:
    start = output.find("{")
    return json.loads(output[start:]) if start >= 0 else output


def _columns(db: Database, expected: int) -> int:
    """Count the fleet schemas that have the new column; raise unless all of them do."""
    found = db.scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'crm_payment' "
        "AND column_name = 'reference'"
    )
    if found != expected:
        raise RuntimeError(f"the AddField reached {found} of {expected} tenant schemas")
    return int(found)

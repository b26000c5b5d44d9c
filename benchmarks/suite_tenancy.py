"""django-tenancy's side of the benchmarks, run in a child process by the harness.

``python -m benchmarks.suite_tenancy PHASE ...`` with ``benchmarks.settings.tenancy``:

- ``signups``: ``Org.objects.create()`` then ``wait_until_ready()``, one tenant
  at a time, through the real worker the harness started;
- ``burst``: N signups as fast as the request side can make them, then wait
  until every tenant is ready (the harness runs 2 worker processes);
- ``inprocess``: a fresh process's first tenant's 20 classes, a further
  tenant's, Django's own ``StateApps`` build of the same models (the floor),
  ``for_tenant()`` on a cached tenant, memory per cached tenant, resident
  memory over many tenants passing through the LRU cache, and the queries of one request.
"""

from __future__ import annotations

import argparse
import time
import timeit
import tracemalloc
from typing import Any

from benchmarks import child, memory


def signups(
    count: int, warmup: int, timeout: float, prefix: str = "s", raw_pairs: bool = False
) -> dict[str, Any]:
    """Sign tenants up one at a time; with ``raw_pairs``, replay the raw DDL after each.

    The paired raw sample is taken seconds apart from the library's, so the
    "x times the raw limit" comparison holds on a machine whose speed drifts.
    """
    from benchmarks.orgs_tenancy.models import Org

    create_ms: list[float] = []
    ready_ms: list[float] = []
    raw_ms: list[float] = []
    replayer, batch = _raw_replayer() if raw_pairs else (None, "")
    for i in range(warmup + count):
        _wait_for_full_pool(timeout)
        started = time.perf_counter()
        org = Org.objects.create(name=f"{prefix}{i}")
        created = child.ms_since(started)
        org.wait_until_ready(timeout=timeout)
        ready = child.ms_since(started)
        if i >= warmup:
            create_ms.append(created)
            ready_ms.append(ready)
            if replayer is not None:
                raw_ms.append(replayer.create(f"raw_pair_{prefix}{i}", batch))
    if replayer is not None:
        replayer.close()
    return {"create_ms": create_ms, "ready_ms": ready_ms, "raw_ms": raw_ms}


def _raw_replayer() -> tuple[Any, str]:
    """A raw replayer of the final-state DDL (see :mod:`benchmarks.raw`), warmed up once."""
    from benchmarks import raw

    replayer = raw.Replayer()
    batch = "\n".join(raw.state_sql(None))
    replayer.create("raw_pair_warmup", batch)
    return replayer, batch


def _wait_for_full_pool(timeout: float) -> None:
    """With the warm pool on, wait (unmeasured) until the refill after the last claim is done.

    Signups one at a time model sparse signups: the pool has time to refill
    between two of them. The first call fills the pool in this process.
    """
    from tenancy._primitives import conf
    from tenancy._orchestration import pool
    from tenancy.models import PoolSchema

    size = conf.pool_size()
    if size <= 0:
        return
    if not PoolSchema.objects.exists():
        pool.refill("default")
    deadline = time.monotonic() + timeout
    while PoolSchema.objects.count() < size:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the warm pool did not refill to {size} in {timeout}s")
        time.sleep(0.02)


def burst(count: int, timeout: float) -> dict[str, Any]:
    from benchmarks.orgs_tenancy.models import Org
    from tenancy._primitives import notify

    created_at: dict[Any, float] = {}
    started = time.perf_counter()
    wall_start = time.time()
    for i in range(count):
        org = Org.objects.create(name=f"b{i}")
        created_at[org.pk] = time.time()
    signed_up = time.perf_counter() - started

    mine = Org.objects.filter(pk__in=list(created_at))

    def all_settled() -> bool:
        return not mine.filter(state__in=["pending", "provisioning"]).exists()

    if not notify.wait(all_settled, "default", timeout, 0.2):
        raise TimeoutError(f"the burst was not ready after {timeout}s")
    elapsed = time.perf_counter() - started
    failed = list(mine.filter(state="failed").values_list("name", "last_error")[:5])
    if failed:
        raise RuntimeError(f"tenants failed during the burst: {failed}")
    latencies = [
        (changed.timestamp() - created_at[pk]) * 1000
        for pk, changed in mine.values_list("pk", "state_changed_at")
    ]
    by_database: dict[str, int] = {}
    for database in mine.values_list("database", flat=True):
        by_database[database] = by_database.get(database, 0) + 1
    return {
        "count": count,
        "by_database": by_database,
        "schemas": _schemas_by_database(by_database),
        "wall_s": elapsed,
        "signup_s": signed_up,
        "started": wall_start,
        "ready_ms": latencies,
    }


def _schemas_by_database(aliases: dict[str, int]) -> dict[str, int]:
    """Count the tenant schemas that really exist on each database the burst used."""
    from django.db import connections

    counts = {}
    for alias in aliases:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", [r"tenant\_%"]
            )
            counts[alias] = cursor.fetchone()[0]
    return counts


def for_tenant_warm(repeat: int, number: int) -> list[float]:
    """Nanoseconds per ``Template.for_tenant(tenant)`` call on a cached tenant."""
    from benchmarks.crm_tenancy.models import Account
    from benchmarks.orgs_tenancy.models import Org

    org = Org.objects.filter(state="ready").first()
    Account.for_tenant(org)
    timer = timeit.Timer("for_tenant(org)", globals={"for_tenant": Account.for_tenant, "org": org})
    return [t / number * 1e9 for t in timer.repeat(repeat=repeat, number=number)]


def first_build() -> dict[str, float]:
    """Milliseconds of a fresh process's first tenant's 20 classes, and of the start-up work.

    ``first``: the first tenant's classes in this process, a copy of the
    prototypes that the app's ``ready()`` built (``prototypes.prepare``).
    ``prepare``: that start-up work, timed again here (the prototype of one
    database built from scratch: its classes through ``ModelBase``, then
    prepared for copying).
    """
    from tenancy._classes import cache, prototypes

    assert not cache.cached_schemas(), "a tenant's classes were built before the first build"
    started = time.perf_counter()
    cache.tenant_models(fake_tenant(-100), verify=False)
    first = child.ms_since(started)
    cache.clear_cache()
    prototypes.forget()
    memory.settle()
    started = time.perf_counter()
    prototypes.prepare(["default"])
    prepare = child.ms_since(started)
    return {"first": first, "prepare": prepare}


def _crm_states() -> dict[tuple[str, str], Any]:
    """The crm models' migration states: what Django's own ``StateApps`` builds from."""
    from django.db.migrations.loader import MigrationLoader

    from benchmarks.crm_tenancy.models import Account

    label = Account._meta.app_label
    state = MigrationLoader(None, ignore_no_migrations=True).project_state()
    return {key: model for key, model in state.models.items() if key[0] == label}


def cold_builds(count: int) -> dict[str, list[float]]:
    """Milliseconds of a further tenant's 20 classes, and of Django's own build of them.

    ``ours``: the tenant's classes right after ``tenancy.clear_cache()`` (the
    prototypes stay: they are per process), without the read of the tenant's
    row that a cache miss of ``for_tenant()`` adds. ``floor``: Django's ``StateApps``
    rendering the same 20 models from their migration state through
    ``ModelBase``, as ``migrate`` does. The two alternate, sample by sample,
    so that a machine whose speed drifts slows both alike.
    """
    from django.db.migrations.state import StateApps

    import tenancy
    from benchmarks.orgs_tenancy.models import Org
    from tenancy._classes import cache

    org = Org.objects.filter(state="ready").first()
    states = _crm_states()
    ours: list[float] = []
    floor: list[float] = []
    for _ in range(count + 2):  # the first samples warm both paths up
        tenancy.clear_cache()
        memory.settle()
        started = time.perf_counter()
        cache.tenant_models(org, verify=False)
        ours.append(child.ms_since(started))
        models = {key: model.clone() for key, model in states.items()}
        memory.settle()
        started = time.perf_counter()
        StateApps(set(), models)
        floor.append(child.ms_since(started))
    tenancy.clear_cache()
    return {"ours": ours[2:], "floor": floor[2:]}


def fake_tenant(i: int) -> Any:
    """An unsaved ready tenant: building its classes needs no schema."""
    from benchmarks.orgs_tenancy.models import Org

    return Org(name=f"m{i}", db_schema=f"tenant_m{i}", database="default", state="ready")


def memory_per_tenant(count: int) -> list[float]:
    """KiB that each cached tenant's 20 classes keep alive (tracemalloc, after GC)."""
    from django.test import override_settings

    import tenancy
    from tenancy._classes import cache

    tenancy.clear_cache()
    samples = []
    with override_settings(TENANCY_MODEL_CACHE_SIZE=count + 10):
        for i in range(2):
            cache.tenant_models(fake_tenant(-1 - i), verify=False)
        memory.settle()
        tracemalloc.start()
        try:
            memory.settle()
            before = tracemalloc.get_traced_memory()[0]
            for i in range(count):
                cache.tenant_models(fake_tenant(i), verify=False)
                memory.settle()
                now = tracemalloc.get_traced_memory()[0]
                samples.append((now - before) / 1024)
                before = now
        finally:
            tracemalloc.stop()
    tenancy.clear_cache()
    return samples


def resident_flatness(cache_size: int, tenants: int) -> dict[str, Any]:
    """Resident memory while ``tenants`` tenants pass through a ``cache_size`` LRU cache."""
    from django.test import override_settings

    import tenancy
    from tenancy._classes import cache

    tenancy.clear_cache()
    checkpoints: list[tuple[int, int]] = []
    started = time.perf_counter()
    with override_settings(TENANCY_MODEL_CACHE_SIZE=cache_size):
        for i in range(tenants):
            cache.tenant_models(fake_tenant(100_000 + i), verify=False)
            if (i + 1) % cache_size == 0:
                memory.settle()
                checkpoints.append((i + 1, memory.rss_bytes()))
        cached = len(cache.cached_schemas())
    tenancy.clear_cache()
    full = checkpoints[0][1]
    return {
        "cache_size": cache_size,
        "tenants": tenants,
        "cached_at_end": cached,
        "rss_mib": [(n, rss / 2**20) for n, rss in checkpoints],
        "growth_pct": (max(rss for _, rss in checkpoints) - full) / full * 100,
        "end_growth_pct": (checkpoints[-1][1] - full) / full * 100,
        "seconds": time.perf_counter() - started,
    }


def request_queries(requests: int) -> list[int]:
    """Queries per request beyond the tenant look-up and the read itself (should be 0)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from benchmarks.crm_tenancy.models import Account
    from benchmarks.orgs_tenancy.models import Org

    names = list(Org.objects.filter(state="ready").values_list("name", flat=True)[:5])
    extra = []
    for i in range(requests):
        with CaptureQueriesContext(connection) as queries:
            org = Org.objects.get(name=names[i % len(names)])  # the app's own tenant look-up
            list(Account.for_tenant(org).objects.all()[:1])  # the request's one read
        extra.append(len(queries.captured_queries) - 2)
    return extra


def inprocess(args: argparse.Namespace) -> dict[str, Any]:
    first = first_build()  # before anything else builds a tenant's classes
    cold = cold_builds(args.cold)
    return {
        "first_build_ms": [first["first"]],
        "prepare_ms": [first["prepare"]],
        "cold_build_ms": cold["ours"],
        "floor_build_ms": cold["floor"],
        "for_tenant_ns": for_tenant_warm(args.repeat, args.number),
        "memory_kib": memory_per_tenant(args.memory),
        "resident": resident_flatness(args.cache_size, args.pass_tenants),
        "extra_queries": request_queries(args.requests),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    one = sub.add_parser("signups")
    one.add_argument("--count", type=int, default=20)
    one.add_argument("--warmup", type=int, default=3)
    one.add_argument("--timeout", type=float, default=60)
    one.add_argument("--prefix", default="s", help="tenant names are PREFIX0, PREFIX1, ...")
    one.add_argument("--raw-pairs", action="store_true", help="replay the raw DDL after each")
    many = sub.add_parser("burst")
    many.add_argument("--count", type=int, default=100)
    many.add_argument("--timeout", type=float, default=1800)
    local = sub.add_parser("inprocess")
    local.add_argument("--repeat", type=int, default=7)
    local.add_argument("--number", type=int, default=200_000)
    local.add_argument("--cold", type=int, default=30)
    local.add_argument("--memory", type=int, default=50)
    local.add_argument("--cache-size", type=int, default=1000)
    local.add_argument("--pass-tenants", type=int, default=10_000)
    local.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    child.setup()
    if args.phase == "signups":
        child.emit(signups(args.count, args.warmup, args.timeout, args.prefix, args.raw_pairs))
    elif args.phase == "burst":
        child.emit(burst(args.count, args.timeout))
    else:
        child.emit(inprocess(args))


if __name__ == "__main__":
    main()

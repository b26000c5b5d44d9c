"""``for_each_tenant()``: how fast it sends, and how much memory it takes, for N tenants.

``python -m benchmarks.fanout --tenants 10000 [--rounds 3] [--spread 600]``
creates a fresh database (``bench_fanout``) and a private redis-server, inserts
N ready tenant rows (no schemas: the tasks are only sent, never run), and sends
one tenant task per tenant with ``for_each_tenant()`` on a queue no worker
consumes, ``--rounds`` times. It prints the sending rate, the tracemalloc peak
of the fan-out (Python allocations while it runs), the growth of the resident
set, and the queries it made, then drops the database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
import uuid

from benchmarks.services import Database, RedisServer

QUEUE = "bench-fanout"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spread", type=float, default=600)
    args = parser.parse_args(argv)
    database = Database("bench_fanout").create()
    redis_server = RedisServer().start()
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="benchmarks.settings.tenancy",
            BENCH_PG_NAME=database.name,
            CELERY_BROKER_URL=redis_server.url,
        )
        print(run(args.tenants, args.rounds, args.spread, redis_server.url))
    finally:
        redis_server.stop()
        database.drop()


def run(tenants: int, rounds: int, spread: float, broker_url: str) -> str:
    import django

    django.setup()
    import redis
    from celery import Celery, Task
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import QuerySet
    from django.test.utils import CaptureQueriesContext

    from benchmarks import memory
    from benchmarks.orgs_tenancy.models import Org
    from tenancy.tasks import for_each_tenant, tenant_task

    app = Celery("bench_fanout", broker=broker_url, set_as_current=True)
    app.set_default()
    call_command("migrate", verbosity=0)
    rows = (
        Org(
            name=f"fan{i}",
            state="ready",
            db_schema=f"tenant_fan{i}",
            incarnation=uuid.uuid4().hex,
            database="default",
        )
        for i in range(tenants)
    )
    QuerySet(Org).bulk_create(rows, batch_size=2000)

    @tenant_task(queue=QUEUE, name="bench.fanout.digest")
    def digest(tenant: object, since: str) -> None:
        """Never run: only sent."""

    client = redis.Redis.from_url(broker_url)

    def fan_out() -> float:
        client.delete(QUEUE)
        started = time.perf_counter()
        sent = for_each_tenant(digest, "2026-12-01", spread=spread)
        elapsed = time.perf_counter() - started
        if sent != tenants or client.llen(QUEUE) != tenants:
            raise RuntimeError(f"sent {sent!r}, {client.llen(QUEUE)} on the queue, of {tenants}")
        return elapsed

    def celery_alone() -> float:
        """The floor: Celery's own apply_async of the same messages on one producer."""
        client.delete(QUEUE)
        meta = {"_tenancy": {"incarnation": uuid.uuid4().hex}}
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for pk in range(tenants):
                countdown = pk * spread / tenants
                Task.apply_async(digest, (pk, "2026-12-01"), meta, producer=producer,
                                 countdown=countdown)  # fmt: skip
        return time.perf_counter() - started

    fan_out()  # warm: connections, the producer pool, imports
    floor = statistics.median(celery_alone() for _ in range(rounds))
    memory.settle()
    before = memory.rss_bytes()
    with CaptureQueriesContext(connection) as captured:
        seconds = [fan_out() for _ in range(rounds)]
    queries = len(captured) // rounds
    grown = memory.rss_bytes() - before
    tracemalloc.start()  # a round of its own: tracing slows every allocation down
    fan_out()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    median = statistics.median(seconds)
    return (
        f"for_each_tenant over {tenants:,} tenants (spread {spread:g} s), {rounds} rounds: "
        f"median {median:.2f} s, {tenants / median:,.0f} tasks/s "
        f"(rounds {', '.join(f'{s:.2f}' for s in seconds)} s); Celery's own apply_async of "
        f"the same messages on one producer {floor:.2f} s ({tenants / floor:,.0f}/s, "
        f"{median / floor:.2f}x); "
        f"tracemalloc peak {peak / 2**20:.2f} MiB; RSS growth over the rounds "
        f"{grown / 2**20:.1f} MiB; {queries} queries per fan-out"
    )


if __name__ == "__main__":
    main()

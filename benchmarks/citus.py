"""Provisioning on Citus against plain PostgreSQL, in one run.

``python -m benchmarks.citus --citus HOST:PORT [--tenants 30] [--burst 40]``
needs a Citus coordinator with workers registered in its ``postgres`` database
(docker-compose.citus.yml, say) and the usual PostgreSQL (PGHOST/PGPORT). For
each side it creates a fresh database (on Citus: on every node, with the
extension, schema-based sharding and the nodes; see tests/citus_cluster.py),
migrates the benchmark project (``Org`` tenants, the 20 crm templates) and,
in a child process of its own, measures with the lifecycle inline
(``TENANCY_EAGER``), so the Celery hop, the same on both sides, is left out:

- **latency**: tenants created one after another; the lifecycle's own
  "provisioned in" time of each (the first one, which records the DDL, apart);
- **burst**: tenants created by 4 threads at once, tenants per second;
- **pool**: with ``TENANCY_POOL_SIZE``, the claim of a pooled schema (a rename).

The sides: PostgreSQL with the DDL replayed as one batch (the default),
PostgreSQL with one statement per query (``TENANCY_CITUS = True`` forces
Citus's way of sending, to tell round trips from Citus's own work), and Citus.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks.services import Database
from benchmarks.stats import percentile

SIDES = ("postgresql", "postgresql-per-statement", "citus")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citus", required=True, metavar="HOST:PORT")
    parser.add_argument("--tenants", type=int, default=30)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.tenants, args.burst)))
        return
    results = {side: run_side(side, args) for side in SIDES}
    print(report(results, args))


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one side in a child process, on a database of its own."""
    from tests import citus_cluster

    name = f"bench_citus_{side.replace('-', '_')}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.settings.tenancy"}
    env["BENCH_PG_NAME"] = name
    if side == "citus":
        host, port = args.citus.rsplit(":", 1)
        env.update(PGHOST=host, PGPORT=port, TENANCY_TEST_CITUS=args.citus)
        os.environ["TENANCY_TEST_CITUS"] = args.citus  # where tests.citus_cluster looks
        citus_cluster.prepare_database(name)
        drop = lambda: citus_cluster.drop_database(name)  # noqa: E731
    else:
        database = Database(name).create()
        drop = database.drop
    try:
        command = [sys.executable, "-m", "benchmarks.citus", "--citus", args.citus]
        command += ["--child", side, "--tenants", str(args.tenants), "--burst", str(args.burst)]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"the {side} side failed:\n{out.stdout}\n{out.stderr}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        drop()


def measure(side: str, tenants: int, burst: int) -> dict[str, Any]:
    """Run the three measurements of one side in this process; return the figures."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from benchmarks.orgs_tenancy.models import Org
    from tenancy._orchestration import pool

    settings.TENANCY_EAGER = True
    if side == "postgresql-per-statement":
        settings.TENANCY_CITUS = True
    call_command("migrate", verbosity=0)
    if side == "citus":
        call_command("tenancy_reference_tables", verbosity=0)
    times = _ProvisionTimes()
    logging.getLogger("tenancy").addHandler(times)
    logging.getLogger("tenancy").setLevel(logging.INFO)

    for i in range(tenants):
        Org.objects.create(name=f"seq{i}")
    first, sequential = times.ms[0], times.ms[1:]

    def create(prefix: str, count: int) -> None:
        try:
            for j in range(count):
                Org.objects.create(name=f"{prefix}{j}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(f"b{t}x", burst // 4)) for t in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    burst_seconds = time.perf_counter() - started
    built = Org.objects.filter(name__startswith="b", state="ready").count()

    # Each claim is followed (inline) by a refill of the one schema it took; the
    # lifecycle's "provisioned in" is taken before it: the claim alone.
    settings.TENANCY_POOL_SIZE = 2
    pool.refill("default")
    times.ms.clear()
    for i in range(tenants):
        Org.objects.create(name=f"pool{i}")
    claims = list(times.ms)
    return {
        "first_ms": first,
        "median_ms": statistics.median(sequential),
        "p95_ms": percentile(sequential, 0.95),
        "burst_per_s": built / burst_seconds,
        "burst_built": built,
        "pool_median_ms": statistics.median(claims) if claims else None,
        "pool_p95_ms": percentile(claims, 0.95) if claims else None,
    }


class _ProvisionTimes(logging.Handler):
    """Collects the lifecycle's "provisioned in N ms" of each tenant."""

    def __init__(self) -> None:
        super().__init__()
        self.ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "provisioned in " in message:
            self.ms.append(float(message.rsplit("provisioned in ", 1)[1].split()[0]))


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    base = results["postgresql"]
    lines = [
        f"Provisioning, {args.tenants} tenants one at a time, {args.burst} in a burst of 4 "
        f"threads, {args.tenants} pool claims; lifecycle inline (TENANCY_EAGER); Citus at "
        f"{args.citus}",
        "",
        "| side | first tenant (records the DDL) | median / p95 | vs PostgreSQL | burst | "
        "pool claim median / p95 |",
        "|---|---|---|---|---|---|",
    ]
    for side, r in results.items():
        lines.append(
            f"| {side} | {r['first_ms']:.1f} ms | {r['median_ms']:.1f} / {r['p95_ms']:.1f} ms | "
            f"{r['median_ms'] / base['median_ms']:.2f}x | {r['burst_per_s']:.1f} tenants/s "
            f"({r['burst_built']} built) | {r['pool_median_ms']:.1f} / {r['pool_p95_ms']:.1f} ms |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

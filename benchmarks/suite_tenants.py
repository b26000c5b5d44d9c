"""django-tenants' side of the benchmarks, run in a child process by the harness.

``python -m benchmarks.suite_tenants PHASE ...`` with ``benchmarks.settings.tenants``:

- ``signups``: ``Client.objects.create()``, which provisions the schema inline
  (create and ready are the same moment), one tenant at a time;
- ``burst``: a share of N signups; the harness runs two of these processes at
  once, django-tenants' equivalent of two worker processes;
- ``inprocess``: ``connection.set_tenant()`` (its way of picking a tenant) and
  the queries of one request through ``TenantMainMiddleware``.
"""

from __future__ import annotations

import argparse
import time
import timeit
from typing import Any

from benchmarks import child


def signup(name: str) -> float:
    """Sign one tenant up as django-tenants documents it; return the create() milliseconds."""
    from benchmarks.customers_tenants.models import Client, Domain

    started = time.perf_counter()
    client = Client.objects.create(name=name, schema_name=f"tenant_{name}")
    elapsed = child.ms_since(started)
    Domain.objects.create(domain=f"{name}.example.com", tenant=client, is_primary=True)
    return elapsed


def signups(count: int, warmup: int) -> dict[str, Any]:
    samples = [signup(f"s{i}") for i in range(warmup + count)][warmup:]
    return {"create_ms": samples, "ready_ms": samples}


def burst(start: int, count: int) -> dict[str, Any]:
    began = time.time()
    samples = [signup(f"b{i}") for i in range(start, start + count)]
    return {"started": began, "ended": time.time(), "ready_ms": samples}


def set_tenant_ns(repeat: int, number: int) -> list[float]:
    """Nanoseconds per ``connection.set_tenant(tenant)`` (no query until the next cursor)."""
    from django.db import connection

    from benchmarks.customers_tenants.models import Client

    tenant = Client.objects.exclude(schema_name="public").first()
    timer = timeit.Timer(
        "set_tenant(tenant)", globals={"set_tenant": connection.set_tenant, "tenant": tenant}
    )
    samples = [t / number * 1e9 for t in timer.repeat(repeat=repeat, number=number)]
    connection.set_schema_to_public()
    return samples


def request_queries(requests: int) -> list[int]:
    """Queries per request beyond the tenant look-up and the read itself."""
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext
    from django_tenants.middleware.main import TenantMainMiddleware

    from benchmarks.crm_tenants.models import Account
    from benchmarks.customers_tenants.models import Domain

    hosts = list(Domain.objects.values_list("domain", flat=True)[:5])
    middleware = TenantMainMiddleware(lambda request: None)
    factory = RequestFactory()
    extra = []
    for i in range(requests):
        request = factory.get("/", HTTP_HOST=hosts[i % len(hosts)])
        with CaptureQueriesContext(connection) as queries:
            middleware.process_request(request)  # the domain look-up, then set_tenant()
            list(Account.objects.all()[:1])  # the request's one read
        extra.append(len(queries.captured_queries) - 2)
    connection.set_schema_to_public()
    return extra


def inprocess(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "set_tenant_ns": set_tenant_ns(args.repeat, args.number),
        "extra_queries": request_queries(args.requests),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    one = sub.add_parser("signups")
    one.add_argument("--count", type=int, default=20)
    one.add_argument("--warmup", type=int, default=3)
    many = sub.add_parser("burst")
    many.add_argument("--start", type=int, default=0)
    many.add_argument("--count", type=int, default=50)
    local = sub.add_parser("inprocess")
    local.add_argument("--repeat", type=int, default=7)
    local.add_argument("--number", type=int, default=200_000)
    local.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    child.setup()
    if args.phase == "signups":
        child.emit(signups(args.count, args.warmup))
    elif args.phase == "burst":
        child.emit(burst(args.start, args.count))
    else:
        child.emit(inprocess(args))


if __name__ == "__main__":
    main()

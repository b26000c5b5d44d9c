"""Resident memory with and without forced collections: where the eviction step comes from.

``python -m benchmarks.gc_lag --cache 100 --tenants 1000 [--collect-every 10]``
passes tenants through the class cache (unsaved tenants: no database is
touched) and prints the resident set after every ``--cache`` tenants. With
``--collect-every N`` it runs a full ``gc.collect()`` after every N builds: the
step once eviction starts then almost vanishes, which shows that it is
evicted classes waiting for CPython's cyclic collector, not a leak (see
BENCHMARKS.md, "Tenant classes copied from a prototype").
"""

from __future__ import annotations

import argparse
import gc
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=int, default=100, help="TENANCY_MODEL_CACHE_SIZE")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--collect-every", type=int, default=0, help="0: never force one")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings.tenancy")
    import django

    django.setup()
    from django.test import override_settings

    from benchmarks import memory
    from benchmarks.suite_tenancy import fake_tenant
    from tenancy._classes import cache

    resident: list[float] = []
    with override_settings(TENANCY_MODEL_CACHE_SIZE=args.cache):
        for i in range(args.tenants):
            cache.tenant_models(fake_tenant(100_000 + i), verify=False)
            if args.collect_every and (i + 1) % args.collect_every == 0:
                gc.collect()
            if (i + 1) % args.cache == 0:
                memory.settle()
                resident.append(memory.rss_bytes() / 2**20)
    full = resident[0]
    growth = (max(resident) - full) / full * 100
    print(
        f"cache {args.cache}, {args.tenants} tenants, forced collection every "
        f"{args.collect_every or 'never'}: RSS MiB {[round(r) for r in resident]}, "
        f"growth after the cache filled {growth:.1f}%"
    )


if __name__ == "__main__":
    main()

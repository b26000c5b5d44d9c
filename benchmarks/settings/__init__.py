"""Settings modules of the three processes the harness runs: tenancy, tenants and raw.

Each reads its database name, broker and workload stage from the
environment the harness sets (see :mod:`benchmarks.services`).
"""

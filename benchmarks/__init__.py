"""Side-by-side benchmarks of django-tenancy and django-tenants: ``python -m benchmarks``.

Each library runs in its own subprocess, with its own settings and its own
fresh PostgreSQL database (``bench_*``), on the same PostgreSQL server and a
private redis-server started by the harness; see ``BENCHMARKS.md``.
"""

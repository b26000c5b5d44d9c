#!/usr/bin/env python
"""Reliability scenarios that need a PostgreSQL server of their own.

Never touches the shared PostgreSQL or the shared Redis: it runs ``initdb`` into a
temporary directory, starts that cluster on a free port (as the ``postgres`` user
when run as root), and a private ``redis-server``; both are removed at the end.

1. **PostgreSQL crash-restarted during a ``tenancy_migrate`` fan-out.** Twelve
   outdated tenants, a worker held mid-migration, then ``pg_ctl restart -m
   immediate`` (a crash: no shutdown checkpoint, WAL replay at start). Afterwards:
   what ``tenancy_migrate`` did, whether anything is half-applied, and whether a
   re-run brings every tenant to ready and current with no orphan schema.
2. **A big tenant dropped under a small lock table.** The cluster runs with
   ``max_locks_per_transaction=16``; a tenant with 2000 tables is dropped once with
   batching disabled (``TENANCY_DROP_BATCH`` huge: the failure batching prevents)
   and once with the default batches.

Usage: ``.venv/bin/python scripts/reliability_pg_restart.py`` (prints a report; exit
status 1 if a check failed). Needs ``/usr/lib/postgresql/<version>/bin`` and
``redis-server``. Takes about 10 seconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path[:0] = [str(ROOT), str(SCRIPTS)]

FLEET = 12
BIG_TABLES = 2000
LOCKS_PER_TRANSACTION = 16

results: list[tuple[str, bool, str]] = []


def check(label: str, ok: bool, detail: str = "") -> bool:
    results.append((label, ok, detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {label}{': ' + detail if detail else ''}", flush=True)
    return ok


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("initdb not found under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Cluster:
    """A throw-away PostgreSQL cluster on a free port."""

    def __init__(self) -> None:
        from benchmarks.services import free_port

        self.bin = pg_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tenancy-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def __enter__(self) -> Cluster:
        subprocess.run(
            as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
            f"-c max_connections=30 -c max_locks_per_transaction={LOCKS_PER_TRANSACTION}"
        )
        self.ctl("start", "-o", options)
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             "postgres", "reliability"],
            check=True,
        )  # fmt: skip
        return self

    def ctl(self, *args: str) -> None:
        # The server's output goes to a log file: a pipe would be held open by the server.
        subprocess.run(
            as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w",
                         "-l", str(self.dir / "server.log"), *args]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def raw(port: int):
    import psycopg2

    conn = psycopg2.connect(dbname="reliability", user="postgres", host="127.0.0.1", port=port)
    conn.autocommit = True
    return conn


def tables(schema: str) -> set[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def make_outdated(tenant) -> None:
    """As in tests/test_reliability_faults.py: provisioned before testapp's first tenant
    migration, so tenancy_migrate really applies testapp.0001_initial to it."""
    from django.db import connection

    from tenancy._migrating import executor, recorder
    from tenancy._migrating.plan import plan as migration_plan
    from tests.testapp.models import Customer

    schema = tenant.db_schema
    names = sorted(tables(schema) - {recorder.RECORD_TABLE})
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE " + ", ".join(f'"{schema}"."{t}"' for t in names) + " CASCADE")
        cursor.execute(f'DELETE FROM "{schema}"."{recorder.RECORD_TABLE}"')
    Customer.objects.filter(pk=tenant.pk).update(migrations_digest="0" * 32, migrations_applied=0)


def tenancy_migrate(env: dict[str, str], *, background: bool = False):
    command = [sys.executable, "-m", "django", "tenancy_migrate", "--concurrency", "2",
               "--timeout", "150"]  # fmt: skip
    if background:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def tail(text: str, lines: int = 4) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def restart_during_fan_out(cluster: Cluster, env: dict[str, str], worker) -> None:
    from django.db import connections

    from tenancy._migrating import executor, recorder
    from tenancy._migrating.plan import plan as migration_plan
    from tests.testapp.models import Customer

    print(f"\n== PostgreSQL crash-restarted during a fan-out of {FLEET} tenants ==", flush=True)
    tenants = [Customer.objects.create(name=f"fleet{n:02d}") for n in range(FLEET)]
    full = tables(tenants[0].db_schema)
    for tenant in tenants:
        make_outdated(tenant)
    worker.start()
    blocker = raw(cluster.port)
    blocker.autocommit = False
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE")
    migrate = tenancy_migrate(env, background=True)
    watcher = raw(cluster.port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with watcher.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'auth_user'::regclass "
                "AND NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if cursor.fetchone()[0]:
                break
        time.sleep(0.1)
    else:
        check("a worker is mid-migration before the crash", False)
    watcher.close()
    connections.close_all()
    started = time.monotonic()
    cluster.ctl("restart", "-m", "immediate")
    check("PostgreSQL crash-restarted (pg_ctl restart -m immediate)", True,
          f"back after {time.monotonic() - started:.1f}s")  # fmt: skip
    with contextlib.suppress(Exception):
        blocker.close()
    try:
        output, _ = migrate.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        migrate.kill()
        output, _ = migrate.communicate()
    print(f"   first tenancy_migrate exit {migrate.returncode}: {tail(output, 6)}", flush=True)
    states = Counter(
        (state, digest == migration_plan().digest)
        for state, digest in Customer.objects.values_list("state", "migrations_digest")
    )
    print(f"   tenants after the crash (state, current): {dict(states)}", flush=True)
    half = [
        t.name
        for t in Customer.objects.all()
        if t.migrations_digest != migration_plan().digest
        and tables(t.db_schema) != {recorder.RECORD_TABLE}
    ]
    check("no tenant left half-migrated by the crash", not half, ", ".join(half))
    failed_without_error = list(
        Customer.objects.filter(state="failed", last_error="").values_list("name", flat=True)
    )
    check("every failed tenant keeps its error", not failed_without_error)
    check(
        "the running tenancy_migrate ends by itself (exit code, no hang)",
        migrate.returncode is not None,
        f"exit {migrate.returncode}",
    )
    outages = [line.strip() for line in output.splitlines() if "database connection" in line]
    print(f"   the running tenancy_migrate logged {len(outages)} lost connection(s); "
          f"{tail(chr(10).join(line for line in output.splitlines() if 'database' in line), 2)}",
          flush=True)  # fmt: skip
    check(
        "the running tenancy_migrate survives the restart and finishes the fleet",
        migrate.returncode == 0 and "0 failed" in output,
        tail(output, 2),
    )
    rerun = tenancy_migrate(env)
    check("a re-run of tenancy_migrate finishes the fleet", rerun.returncode == 0,
          tail(rerun.stdout + rerun.stderr, 2))  # fmt: skip
    tenants = list(Customer.objects.all())
    bad = [
        (t.name, t.state)
        for t in tenants
        if t.state != "ready"
        or t.migrations_digest != migration_plan().digest
        or tables(t.db_schema) != full
        or sorted(recorder.applied(t.db_schema, "default")) != sorted(migration_plan().keys)
    ]
    check("every tenant ends ready, current and complete", not bad, str(bad))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant%%'")
        schemas = {row[0] for row in cursor.fetchall()}
    check("one schema per tenant, no orphan", schemas == {t.db_schema for t in tenants})
    worker.stop()


def big_drop_under_a_small_lock_table() -> None:
    from django.db import connection, transaction
    from django.test.utils import override_settings

    from tenancy._primitives import storage
    from tests.support import drop_storage
    from tests.testapp.models import Customer

    print(f"\n== Dropping a tenant with {BIG_TABLES} tables, max_locks_per_transaction="
          f"{LOCKS_PER_TRANSACTION} ==", flush=True)  # fmt: skip
    big = Customer.objects.create(name="big")
    for start in range(0, BIG_TABLES, 100):
        with transaction.atomic(), connection.cursor() as cursor:
            for number in range(start, start + 100):
                cursor.execute(f'CREATE TABLE "{big.db_schema}"."extra_{number:04d}" (id int)')
    count = len(tables(big.db_schema))
    with override_settings(TENANCY_DROP_BATCH=10**6):
        try:
            drop_storage(big)
            error = ""
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    check(
        "without batches, the drop exceeds the lock table (the failure batching prevents)",
        "max_locks_per_transaction" in error or "out of shared memory" in error,
        error or "it did not fail",
    )
    check("the failed drop rolled back whole", len(tables(big.db_schema)) == count)
    started = time.monotonic()
    dropped = drop_storage(big)
    check(
        "with the default batches (TENANCY_DROP_BATCH=200) the drop succeeds",
        dropped and not storage.schema_exists(big.db_schema, "default"),
        f"{count} tables in {time.monotonic() - started:.1f}s",
    )


def main() -> int:
    # A SIGTERM (CI timeout, Ctrl-C) still stops the worker, Redis and the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with Cluster() as cluster:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="reliability_settings",
            PGHOST="127.0.0.1",
            PGPORT=str(cluster.port),
            PGUSER="postgres",
            PGDATABASE="reliability",
        )
        import django

        django.setup()
        from django.core.management import call_command

        from benchmarks.services import RedisServer
        from tests.workers import Worker

        call_command("migrate", verbosity=0)
        redis = RedisServer()
        redis.start()
        queue = f"reliability-pg-{os.getpid()}"
        pythonpath = f"{ROOT}{os.pathsep}{SCRIPTS}"
        env = {
            **os.environ,
            "PYTHONPATH": pythonpath,
            "TENANCY_EAGER": "0",
            "TENANCY_CELERY_QUEUE": queue,
            "CELERY_BROKER_URL": redis.url,
        }
        worker = Worker(
            redis.url,
            queue,
            concurrency=2,
            DJANGO_SETTINGS_MODULE="reliability_settings",
            PYTHONPATH=pythonpath,
            TENANCY_EAGER="0",
            TENANCY_RETRY_BACKOFF="0.5",
        )
        try:
            restart_during_fan_out(cluster, env, worker)
            big_drop_under_a_small_lock_table()
        finally:
            worker.stop()
            redis.stop()
            print(f"\nworker log: {worker.log}")
    failed = [label for label, ok, _ in results if not ok]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

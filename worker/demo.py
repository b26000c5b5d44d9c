"""``python -m worker demo``: the whole tenant lifecycle in a few seconds.

Signs up three tenants, lets a real Celery worker build their storage, uses
their per-tenant models, deletes one and watches its storage go.

By default it needs no services: a fresh SQLite file in a temporary folder
and Celery's in-memory broker, consumed by a Celery worker running in a
thread of this process (a real worker, not eager mode). With
``DATABASE_URL`` and/or ``CELERY_BROKER_URL`` set, the same flow runs
against that database and broker (still with the in-process worker).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from typing import Any, TextIO

#: The tenants the demo signs up, with the projects each one creates.
PROJECTS: dict[str, list[str]] = {
    "acme": ["Website", "Mobile app", "Billing"],
    "globex": ["Launch plan"],
    "initech": ["TPS reports", "Printer fix"],
}
#: Seconds to wait for a tenant to become ready, or for a drop.
TIMEOUT = 30.0


class DemoFailed(Exception):
    """Something the demo shows did not happen; the message says what."""


def main(out: TextIO | None = None) -> int:
    """Run the demo; return the process exit code."""
    out = out or sys.stdout
    tmp_dir = _prepare_environment()
    started = time.perf_counter()
    try:
        return _run(out, started, own_database=tmp_dir is not None)
    except DemoFailed as exc:
        print(f"\nThe demo failed: {exc}", file=out, flush=True)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(f"\nThe demo failed: {type(exc).__name__}: {exc}", file=out, flush=True)
        return 1
    finally:
        if tmp_dir is not None:
            _close_connections()
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _prepare_environment() -> str | None:
    """Point the example settings at a fresh SQLite file and the in-memory broker,
    unless the user chose a database or a broker; return the temporary folder."""
    tmp_dir = None
    if not os.environ.get("DATABASE_URL"):
        tmp_dir = tempfile.mkdtemp(prefix="tenancy-demo-")
        os.environ["WORKER_SQLITE_PATH"] = os.path.join(tmp_dir, "demo.sqlite3")
    if not os.environ.get("CELERY_BROKER_URL"):
        os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["DJANGO_SETTINGS_MODULE"] = "worker.settings"
    os.environ["TENANCY_EAGER"] = "0"  # the point is the worker
    return tmp_dir


def _run(out: TextIO, started: float, *, own_database: bool) -> int:
    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    import django

    django.setup()
    _quiet_logs()

    from celery.contrib.testing.worker import start_worker
    from django.core.management import call_command
    from django.db import connection
    from kombu.utils.url import maybe_sanitize_url

    from tenancy._primitives import storage
    from tenancy.exceptions import TenantNotReady
    from tenancy.models import Tombstone
    from worker.celery import app
    from worker.example.models import Customer, Project, Report

    broker = str(app.conf.broker_url)
    if broker.startswith("memory://"):
        app.conf.broker_transport_options = {"polling_interval": 0.02}
    on_sqlite = connection.vendor == "sqlite"
    where = (
        "SQLite (a fresh file)"
        if own_database
        else f"{connection.vendor} database {connection.settings_dict['NAME']!r}"
    )
    say("django-tenancy demo")
    say(f"  database: {where}   broker: {maybe_sanitize_url(broker)}")
    call_command("migrate", verbosity=0, interactive=False)

    # On a database of the user's, leftovers of an earlier run must not collide.
    suffix = "" if own_database else "_" + uuid.uuid4().hex[:6]
    names = {name + suffix: projects for name, projects in PROJECTS.items()}
    width = max(len(name) for name in names)

    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=15.0,
    ) as worker:
        _quiet_logs()  # the worker's start configured logging again
        say("  a Celery worker is running in a thread of this process")

        say("\n1. Sign up three customers (the web request returns at once)")
        signed_up: list[tuple[Any, float]] = []
        create_ms = []
        for name in names:
            t0 = time.perf_counter()
            customer = Customer.objects.create(name=name)
            create_ms.append((time.perf_counter() - t0) * 1000)
            signed_up.append((customer, t0))
            took = f"create() took {create_ms[-1]:5.1f} ms"
            say(f"   {name:<{width}}  {took}   state: {customer.state}")

        say("\n2. The worker builds each tenant's tables")
        ready_ms = []
        for customer, t0 in signed_up:
            try:
                customer.wait_until_ready(timeout=TIMEOUT)
            except TenantNotReady as exc:
                raise DemoFailed(str(exc)) from exc
            ready_ms.append((time.perf_counter() - t0) * 1000)
            place = (
                f"tables prefixed {customer.db_schema}{storage.PREFIX_SEPARATOR}"
                if on_sqlite
                else f"schema {customer.db_schema}"
            )
            say(
                f"   {customer.name:<{width}}  ready {ready_ms[-1]:5.0f} ms after signup   "
                f"state: {customer.state}   {place}"
            )

        say("\n3. Each tenant gets its own model classes: Project.for_tenant(customer)")
        for customer, _ in signed_up:
            TenantProject = Project.for_tenant(customer)
            TenantReport = Report.for_tenant(customer)
            for project_name in names[customer.name]:
                project = TenantProject.objects.create(name=project_name)
                TenantReport.objects.create(project=project, content=f"Notes on {project_name}")
        for customer, _ in signed_up:
            projects = Project.for_tenant(customer).objects.count()
            reports = Report.for_tenant(customer).objects.count()
            expected = len(names[customer.name])
            if projects != expected or reports != expected:
                raise DemoFailed(
                    f"{customer.name} sees {projects} projects and {reports} reports, "
                    f"not {expected} of each: tenants are not isolated"
                )
            table = Project.for_tenant(customer)._meta.db_table
            say(
                f"   {customer.name:<{width}}  {projects} project(s), {reports} report(s)"
                f"   in {table}"
            )
        acme, globex = signed_up[0][0], signed_up[1][0]
        leaked = Project.for_tenant(globex).objects.filter(name="Billing").exists()
        if leaked:
            raise DemoFailed(f"{globex.name} sees {acme.name}'s project")
        billing = Report.for_tenant(acme).objects.filter(project__name="Billing").count()
        say(
            f"   {globex.name} cannot see {acme.name}'s 'Billing' project; "
            f"{acme.name} has {billing} report(s) on it"
        )

        say("\n4. Delete a customer: its tables are dropped by the worker")
        gone = signed_up[-1][0]
        schema, database = gone.db_schema, gone.database
        tables = storage.existing_tenant_tables(schema, database)
        t0 = time.perf_counter()
        gone.delete()
        delete_ms = (time.perf_counter() - t0) * 1000
        say(f"   {gone.name:<{width}}  delete() took {delete_ms:5.1f} ms   drop queued")
        _wait_for_drop(schema, database, Tombstone, storage, TIMEOUT)
        drop_ms = (time.perf_counter() - t0) * 1000
        say(
            f"   {gone.name:<{width}}  {schema} dropped {drop_ms:5.0f} ms after delete()"
            f"   ({len(tables)} tables gone)"
        )
        kept = [c for c, _ in signed_up[:-1]]
        for customer in kept:
            count = Project.for_tenant(customer).objects.count()
            if count != len(names[customer.name]):
                raise DemoFailed(f"{customer.name} lost projects when {gone.name} was dropped")
        say(f"   {' and '.join(c.name for c in kept)} keep all their data")

        if not own_database:
            for customer in kept:
                customer.delete()
            for customer in kept:
                _wait_for_drop(customer.db_schema, customer.database, Tombstone, storage, TIMEOUT)
            say("   (the demo's tenants were removed from your database)")
        # Wake the worker's blocking loop now rather than at its next 2 s poll.
        app.control.shutdown(destination=[worker.hostname])

    total = time.perf_counter() - started
    say(
        f"\nDone in {total:.1f} s: {len(signed_up)} signups answered in at most "
        f"{max(create_ms):.0f} ms each; every tenant was ready within {max(ready_ms):.0f} ms; "
        f"1 tenant deleted and its storage dropped."
    )
    say("Run your own worker with `celery -A worker worker -l info`; see README.md.")
    return 0


def _quiet_logs() -> None:
    """Keep warnings and errors, drop the INFO lines that repeat the demo's story."""
    logging.getLogger("tenancy").setLevel(logging.WARNING)
    # kombu warns that memory:// names no host, which it does not need.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    # "Got shutdown from remote": the demo stops its own worker that way.
    logging.getLogger("celery.worker.control").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"Using settings\.DEBUG")


def _wait_for_drop(
    schema: str, database: str, tombstone: Any, storage: Any, timeout: float
) -> None:
    def dropped() -> bool:
        done = tombstone.objects.filter(schema=schema, done_at__isnull=False).exists()
        return done and not storage.schema_exists(schema, database)

    if not _poll(dropped, timeout):
        raise DemoFailed(f"the storage of {schema} was not dropped within {timeout:.0f} s")


def _poll(check: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _close_connections() -> None:
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # Django may not be set up (an early failure)
        pass

"""Fixtures shared by the whole suite: tenants on the real database under test."""

from __future__ import annotations

import itertools
import os

import pytest
from django.db import connection, connections

import tenancy
from tenancy._primitives import storage
from tests.support import drop_raw

_names = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _suite_celery_app():
    """Make the suite's Celery app the default one, in every thread, from the start.

    Celery's current app is per thread; other threads (signup clients, a rollout
    run in a thread) get the default app. Celery makes this app the default only
    if nothing touched a shared task before it was imported (tests/test_logs.py
    does): else the default is Celery's unconfigured fallback app, whose tasks go
    to amqp://localhost, never reach the test's workers, and stay in whatever
    RabbitMQ listens there.
    """
    from tests.celery_app import app

    app.set_default()


@pytest.fixture(autouse=True)
def _fresh_class_cache():
    tenancy.clear_cache()
    yield
    tenancy.clear_cache()


@pytest.fixture
def make_tenant(transactional_db):
    """Create ready tenants (eager lifecycle) and drop their storage afterwards."""
    from tests.testapp.models import Customer

    created = []

    def make(name: str | None = None, **fields):
        tenant = Customer.objects.create(name=name or f"t{next(_names)}", **fields)
        created.append((tenant.db_schema, tenant.database))
        tenant.refresh_from_db()
        return tenant

    yield make
    drop_all_tenant_storage()


def drop_all_tenant_storage() -> None:
    """Drop every tenant schema (or prefixed table) left on the test database.

    Tenant tables reference auth_user, so a leftover one would make the flush
    between transactional tests fail.
    """
    if storage.uses_schemas(connection):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nspname FROM pg_namespace "
                "WHERE nspname LIKE 'tenant%%' OR nspname LIKE 'tenancy_pool_%%'"
            )
            schemas = [row[0] for row in cursor.fetchall()]
    else:
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        schemas = sorted({t.split(storage.PREFIX_SEPARATOR)[0] for t in tables if "__" in t})
    for schema in schemas:
        drop_raw(schema, "default")


@pytest.fixture
def two_databases(settings):
    """Tenants may go to "default" and "other" (PostgreSQL); their schemas on both are
    dropped afterwards. Tests using it declare both databases to pytest-django."""
    settings.TENANCY_DATABASES = ["default", "other"]
    yield
    for alias in ("default", "other"):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant%%'")
            schemas = [row[0] for row in cursor.fetchall()]
        for schema in schemas:
            drop_raw(schema, alias)


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


def on_postgresql() -> bool:
    return storage.uses_schemas(connection)


@pytest.fixture(scope="session")
def broker():
    """A redis-server of the suite's own, used as the Celery broker by the tests."""
    from benchmarks.services import RedisServer
    from tests.celery_app import app

    server = RedisServer()
    server.start()
    app.conf.broker_url = server.url
    app.amqp._producer_pool = None  # publish to this server even if an earlier test published
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker(broker, django_db_setup, django_db_blocker):
    """A real `celery worker` process (2 pool processes) on the test database."""
    from tests.workers import Worker

    process = Worker(broker.url, f"tenancy-tests-{os.getpid()}", concurrency=2)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def async_lifecycle(settings, worker, transactional_db):
    """Send lifecycle tasks to the real worker instead of running them inline."""
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = worker.queue
    return worker


@pytest.fixture(scope="session")
def pgbouncer(request):
    """A PgBouncer of the suite's own (transaction pooling, 5 server connections
    per database and user) in front of the PostgreSQL under test; see tests/pgbouncer.py.

    On PostgreSQL a missing /usr/sbin/pgbouncer fails the test (CI installs it).
    It needs the test databases, and is stopped before they are dropped: its
    server connections would make DROP DATABASE fail.
    """
    from tests.settings import BACKEND

    if BACKEND == "sqlite":
        pytest.skip("PgBouncer pools PostgreSQL connections: not on the SQLite leg")
    request.getfixturevalue("django_db_setup")
    from tests.pgbouncer import PgBouncer

    server = PgBouncer()
    server.start()
    yield server
    server.stop()


def pytest_sessionfinish(session, exitstatus):
    """Kill the workers of a run that ended before their teardown (tests/workers.py)."""
    from tests.workers import kill_all

    kill_all()

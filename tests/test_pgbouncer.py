"""The lifecycle behind a real PgBouncer in transaction pooling mode.

The web side (this test process) and the workers (real ``celery worker``
processes) both reach PostgreSQL through the suite's PgBouncer, which shares 5
server connections per database between every client, one transaction at a
time. Nothing of the lifecycle may depend on session state there: a session
advisory lock would stay behind on a pooled server connection (and its unlock
run on another one), a ``LISTEN`` would register on a connection that other
clients then use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from benchmarks.services import pg_connect, wait_for
from tenancy import tasks
from tenancy._delivery import dispatch
from tenancy._primitives import locks, notify
from tenancy.models import TenantState, Tombstone
from tests.conftest import drop_all_tenant_storage
from tests.testapp.models import Customer, Project
from tests.workers import Worker

pytestmark = pytest.mark.postgresql


@pytest.fixture
def through_pgbouncer(pgbouncer, transactional_db):
    """Point this process's "default" database at the PgBouncer for the test."""
    settings_dict = connections["default"].settings_dict
    saved = dict(settings_dict)
    connections.close_all()
    settings_dict.update(HOST="127.0.0.1", PORT=str(pgbouncer.port))
    yield pgbouncer
    connections.close_all()
    settings_dict.update(saved)
    drop_all_tenant_storage()


def _advisory_locks() -> list[tuple]:
    """Every advisory lock held in the test database, read straight from the server."""
    conn = pg_connect(connection.settings_dict["NAME"])
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid, classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return cursor.fetchall()
    finally:
        conn.close()


def test_locks_taken_and_released_through_pgbouncer_leave_nothing_behind(through_pgbouncer):
    """100 locks over 4 threads, with other transactions in between that shuffle the
    pooled server connections: each lock excludes its other holders while held, and
    none is left on a server connection after its release.

    A held lock pins one of the 5 server connections for as long as it is held (its
    transaction), so at most 4 holders leave one for everything else: the sizing the
    docs ask for (a pool larger than the number of tasks running at once)."""
    inside: dict[str, int] = {}
    overlaps = []
    guard = threading.Lock()

    def work(n: int) -> None:
        name = f"pgb-test:{n % 10}"
        try:
            with locks.hold(name, "default", wait=30) as held:
                assert held is not None
                with guard:
                    inside[name] = inside.get(name, 0) + 1
                    if inside[name] > 1:
                        overlaps.append(name)
                with connection.cursor() as cursor:  # another transaction meanwhile
                    cursor.execute("SELECT pg_sleep(0.01)")
                assert locks.is_held(name, "default")
                with guard:
                    inside[name] -= 1
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(100)))
    assert overlaps == []
    assert _advisory_locks() == []
    assert not any(locks.is_held(f"pgb-test:{n}", "default") for n in range(10))


def test_a_lock_holder_killed_through_pgbouncer_frees_its_lock_at_once(through_pgbouncer):
    """The lock's transaction pins a server connection; PgBouncer closes it when the
    client dies, and PostgreSQL releases the lock with it."""
    code = (
        "import os, sys, time, django; django.setup()\n"
        "from tenancy._primitives import locks\n"
        "with locks.hold('pgb-test:killed', 'default') as held:\n"
        "    print('held' if held else 'busy', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PGDATABASE": connection.settings_dict["NAME"],
        "PGPORT": str(through_pgbouncer.port),
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert locks.is_held("pgb-test:killed", "default")
        with locks.hold("pgb-test:killed", "default") as held:
            assert held is None  # excluded while the holder lives
        holder.kill()
        holder.wait()
        wait_for(lambda: not locks.is_held("pgb-test:killed", "default"), 5, "the lock to die")
    finally:
        holder.kill()
    assert _advisory_locks() == []


def test_waits_through_pgbouncer_poll_instead_of_listening(through_pgbouncer, settings):
    """A LISTEN through PgBouncer would register on a pooled server connection and
    never be heard: the pooler is detected and the wait polls."""
    notify._listen_safe.clear()
    connection.ensure_connection()
    assert notify.listen_allowed("default", connection.connection) is False
    listener, _owned = notify._listen("default")
    assert listener is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_listening_channels()")
        assert cursor.fetchone()[0] == 0
    notify._listen_safe.clear()


def test_listening_is_kept_where_nothing_pools_the_connection(db):
    notify._listen_safe.clear()
    connection.ensure_connection()
    assert notify.listen_allowed("default", connection.connection) is True
    notify._listen_safe.clear()


SIGNUPS = 60
DELETES = 20


def test_signups_with_duplicate_deliveries_and_drops_through_pgbouncer_lose_nothing(
    through_pgbouncer, broker, settings
):
    """Web and two workers through PgBouncer: every signup is delivered twice, a third
    of the tenants are deleted again. Every tenant ends ready (none flipped to failed by
    a duplicate), every drop completes, and no advisory lock is left behind."""
    queue = f"tenancy-pgb-{os.getpid()}-{time.monotonic_ns()}"
    workers = [
        Worker(broker.url, queue, concurrency=2, PGPORT=str(through_pgbouncer.port)).start()
        for _ in range(2)
    ]
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = queue
    try:
        tenants = [Customer.objects.create(name=f"pgb{n}") for n in range(SIGNUPS)]
        for tenant in tenants:  # a duplicate delivery of every provisioning
            assert dispatch.publish(tasks.provision_tenant, (tenant.pk,))
        for tenant in tenants:
            tenant.wait_until_ready(timeout=120)
        for tenant in tenants[:DELETES]:
            tenant.delete()
        wait_for(
            lambda: not Tombstone.objects.filter(done_at__isnull=True).exists(),
            120,
            "every drop to complete",
        )
        time.sleep(1)  # any late duplicate would act now
    finally:
        for worker in workers:
            worker.stop()
    states = dict(Customer.objects.values_list("name", "state"))
    assert states == {f"pgb{n}": TenantState.READY for n in range(DELETES, SIGNUPS)}
    assert not Customer.objects.exclude(last_error="").exists()
    for tenant in tenants[DELETES:]:
        tenant.refresh_from_db()
        assert Project.for_tenant(tenant).objects.create(name="works").pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_pgb%%'")
        assert cursor.fetchone()[0] == SIGNUPS - DELETES
    assert Tombstone.objects.filter(last_error="").count() == DELETES
    assert _advisory_locks() == []

"""Big tenants: dropping one does not hold up the other tenants' work.

Batching itself (a bounded number of tables, hence of locks, per transaction) is
tests/test_big_and_private.py's ``test_a_big_tenant_is_dropped_a_batch_of_tables_per_transaction``;
scripts/reliability_pg_restart.py shows the real ``max_locks_per_transaction`` failure
it prevents, on a cluster of its own started with a small lock table.

Tenant tables have foreign keys to shared tables (``auth_user`` here). Dropping such a
table takes an ACCESS EXCLUSIVE lock on the *referenced* shared table until the drop's
transaction ends (PostgreSQL removes the foreign key's triggers there).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections

from tenancy._primitives import storage
from tests.support import drop_storage
from tests.testapp.models import Project, Report
from tests.workers import waiting_on_auth_user

pytestmark = pytest.mark.postgresql

EXTRA_TABLES = 400


def _make_big(tenant, tables: int = EXTRA_TABLES) -> None:
    """Give the tenant hundreds of tables, each with a foreign key to the users table,
    as an application with hundreds of models that record who created a row would."""
    with connection.cursor() as cursor:
        for number in range(tables):
            cursor.execute(
                f'CREATE TABLE "{tenant.db_schema}"."extra_{number:03d}" '
                "(id serial PRIMARY KEY, created_by_id integer REFERENCES auth_user (id))"
            )


def _neighbour_work(neighbour, user: User, label: str) -> float:
    """One round of another tenant's reads and writes (joins and foreign keys to
    auth_user included); return how long it took."""
    started = time.monotonic()
    project = Project.for_tenant(neighbour).objects.create(name=label[:50], owner=user)
    Report.for_tenant(neighbour).objects.create(project=project, content="x")
    rows = list(Project.for_tenant(neighbour).objects.select_related("owner").filter(pk=project.pk))
    assert rows[0].owner == user
    assert Report.for_tenant(neighbour).objects.filter(project__name=project.name).count() == 1
    return time.monotonic() - started


def _in_thread(target, *args) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = target(*args)
        except BaseException as exc:  # pragma: no cover - reported by the caller
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_other_tenants_read_and_write_while_a_big_tenant_is_dropped(make_tenant):
    big, neighbour = make_tenant("big"), make_tenant("neighbour")
    user = User.objects.create(username="owner")
    _make_big(big)
    drop, outcome = _in_thread(drop_storage, big)
    latencies = []
    while drop.is_alive():
        latencies.append(_neighbour_work(neighbour, user, f"during {len(latencies)}"))
    drop.join()
    assert outcome == {"result": True}
    assert not storage.schema_exists(big.db_schema, "default")
    assert latencies, "the drop finished before the neighbour could do anything"
    assert max(latencies) < 5, f"the neighbour waited {max(latencies):.1f}s behind the drop"
    assert Project.for_tenant(neighbour).objects.count() == len(latencies)


def test_a_drop_waiting_for_a_shared_table_does_not_queue_other_tenants_behind_it(make_tenant):
    """A long transaction that read auth_user (a report, a backup, a session idle in
    transaction) makes the drop wait for its ACCESS EXCLUSIVE lock on auth_user; while it
    waits, PostgreSQL queues every later lock request on auth_user behind it, so every
    tenant's foreign-key write and every join to users would stall for as long as that
    transaction lasts. A drop must give way (lock_timeout, then retry) instead."""
    big, neighbour = make_tenant("big"), make_tenant("neighbour")
    user = User.objects.create(username="owner")
    _make_big(big, 250)
    reader = connections.create_connection("default")
    reader.set_autocommit(False)
    with reader.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM auth_user")  # holds ACCESS SHARE until it ends
    drop, drop_outcome = _in_thread(drop_storage, big)
    try:
        deadline = time.monotonic() + 10
        while drop.is_alive() and time.monotonic() < deadline and not waiting_on_auth_user():
            time.sleep(0.05)
        work, outcome = _in_thread(_neighbour_work, neighbour, user, "while the drop waits")
        work.join(timeout=5)
        stalled = work.is_alive()
    finally:
        reader.rollback()
        reader.close()
        drop.join(timeout=60)
    work.join(timeout=30)
    assert not stalled, "the neighbour's work queued behind the waiting drop for over 5s"
    assert "error" not in outcome, outcome
    assert "error" not in drop_outcome or "lock timeout" in str(drop_outcome["error"])

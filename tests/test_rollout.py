"""``rollout.run()``, what ``tenancy_migrate`` waits on: its cost when there is nothing
to do, what it reports when it gives up, duplicate deliveries of its batches, and the
notification wait it sleeps in losing its connection.

The faults it rides out (a dead worker, its own connection lost) are in
tests/test_reliability_faults.py; a migration deployed while an old worker
provisions is in tests/test_reliability_concurrency.py.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import pytest
from django.db import connection

from tenancy import lifecycle, tasks
from tenancy._delivery import dispatch
from tenancy._migrating import recorder
from tenancy._migrating.plan import plan as migration_plan
from tenancy._orchestration import rollout
from tenancy._primitives import locks, notify
from tenancy.models import TenantState
from tests.testapp.models import Customer
from tests.workers import hold_tenant_ddl, release_tenant_ddl, wait_for, waiting_on_auth_user

OLD_DIGEST = "0" * 32


def test_a_rollout_with_nothing_outdated_and_nothing_provisioning_costs_one_query(
    make_tenant, django_assert_num_queries
):
    make_tenant("current")
    with django_assert_num_queries(1):
        report = rollout.run()
    assert report.outcomes == [] and report.enqueued == 0


@pytest.mark.postgresql
def test_a_timed_out_rollout_names_every_tenant_it_did_not_see_finish(
    broker, make_tenant, settings
):
    """No worker consumes the queue: every tenant times out, each outcome with the
    tenant's name, schema and database (not its primary key and an empty schema)."""
    sent, queued = make_tenant("sent"), make_tenant("queued")
    Customer.objects.filter(pk__in=[sent.pk, queued.pk]).update(migrations_digest=OLD_DIGEST)
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = f"tenancy-nobody-{os.getpid()}-{time.monotonic_ns()}"
    pending = Customer.objects.create(name="pending")  # its provisioning is never consumed
    assert Customer.objects.get(pk=pending.pk).state == TenantState.PENDING

    report = rollout.run(concurrency=1, batch_size=1, timeout=1, poll=0.1)

    outcomes = {o.pk: o for o in report.outcomes}
    assert set(outcomes) == {sent.pk, queued.pk, pending.pk}
    assert not report.succeeded
    for tenant in (sent, queued, pending):
        tenant.refresh_from_db()
        outcome = outcomes[tenant.pk]
        assert (outcome.name, outcome.schema, outcome.database) == (
            tenant.name,
            tenant.db_schema,
            tenant.database,
        )
        assert outcome.schema.startswith("tenant_") and outcome.database == "default"
    assert outcomes[sent.pk].detail == "timed out"
    assert outcomes[queued.pk].detail == "timed out before it was sent"
    assert outcomes[pending.pk].detail == "timed out while pending"


@pytest.mark.postgresql
def test_duplicate_deliveries_of_a_migrate_batch_migrate_each_tenant_once(
    async_lifecycle, make_tenant
):
    """What makes resending safe: three deliveries of one batch, the second arriving
    while the first holds the first tenant mid-migration (the worker has two pool
    processes), apply each migration once per tenant; the others wait for the lock
    and find the tenant current (or give up on it, "busy")."""
    tenants = [make_tenant(f"dup{n}") for n in range(3)]
    for tenant in tenants:
        tenant.wait_until_ready(timeout=30)  # provisioned by the worker
        _unmigrate(tenant.db_schema)
    pks = [t.pk for t in tenants]
    Customer.objects.filter(pk__in=pks).update(migrations_digest=OLD_DIGEST, migrations_applied=0)

    blocker = hold_tenant_ddl()
    try:
        for _ in range(3):
            assert dispatch.publish(tasks.migrate_tenants, (pks,))
        wait_for(waiting_on_auth_user, 30, "the first delivery to be mid-migration")
        time.sleep(1)  # the second delivery meets the tenant's lock held
    finally:
        release_tenant_ddl(blocker)

    digest = migration_plan().digest
    wait_for(
        lambda: Customer.objects.filter(pk__in=pks, migrations_digest=digest).count() == 3,
        60,
        "every tenant to be current",
    )
    wait_for(
        lambda: len(_batch_results(async_lifecycle.output(), pks)) == 3, 60, "three deliveries"
    )
    results = _batch_results(async_lifecycle.output(), pks)
    migrated = [pk for result in results for pk, what in result.items() if what == "migrated"]
    assert sorted(migrated) == sorted(str(pk) for pk in pks), results
    assert {what for result in results for what in result.values()} <= {
        "migrated",
        "current",
        "busy",
    }
    for tenant in Customer.objects.filter(pk__in=pks):
        assert tenant.state == TenantState.READY and tenant.last_error == ""
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM "{tenant.db_schema}"."{recorder.RECORD_TABLE}"')
            assert cursor.fetchone()[0] == len(migration_plan().keys)


def _unmigrate(schema: str) -> None:
    """Leave only the (empty) record table: as if provisioned before testapp's first
    tenant migration, so migrating applies it for real."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
            [schema, recorder.RECORD_TABLE],
        )
        tables = ", ".join(f'"{schema}"."{row[0]}"' for row in cursor.fetchall())
        cursor.execute(f"DROP TABLE {tables} CASCADE")
        cursor.execute(f'DELETE FROM "{schema}"."{recorder.RECORD_TABLE}"')


def _batch_results(output: str, pks: list[int]) -> list[dict[str, str]]:
    """The results of the worker's migrate_tenants tasks on exactly ``pks``."""
    wanted = {str(pk) for pk in pks}
    found = []
    pattern = r"tenancy\.migrate_tenants\[[^\]]+\] succeeded in [^:]+: (\{.*\})"
    for match in re.finditer(pattern, output):
        result = dict(re.findall(r"'([^']+)': '([^']+)'", match.group(1)))
        if set(result) == wanted:
            found.append(result)
    return found


@pytest.mark.postgresql
@pytest.mark.parametrize("listen", [None, False], ids=["listening", "polling"])
def test_a_wait_whose_connection_is_terminated_goes_on_by_polling(
    transactional_db, settings, listen
):
    """notify.wait() (what the rollout and wait_until_ready() sleep in) listens on the
    waiting thread's own connection, or polls on it (``TENANCY_LISTEN = False``, a
    pooler); a terminated backend costs the notifications only: the wait goes on by
    polling, and its checks reconnect."""
    settings.TENANCY_LISTEN = listen
    done = threading.Event()
    querying = threading.Lock()  # the backend is terminated between queries, not in one
    outcome: dict[str, Any] = {}

    def check() -> bool:
        outcome["checks"] = outcome.get("checks", 0) + 1
        with querying:
            Customer.objects.exists()  # reconnects once the dead connection is closed
        return done.is_set()

    def waiter() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            outcome["result"] = notify.wait(check, "default", timeout=30, poll=0.1)
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_for(lambda: outcome.get("checks"), 10, "the wait to start")
    with querying, connection.cursor() as cursor:
        # With a timeout, pg_terminate_backend returns once the backend is gone.
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [outcome["pid"]])
        assert cursor.fetchone()[0]
    checks = outcome["checks"]
    wait_for(lambda: outcome["checks"] > checks + 1 or not thread.is_alive(), 10, "more checks")
    done.set()
    thread.join(timeout=10)
    assert "error" not in outcome, outcome
    assert outcome["result"] is True


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--grace=-1", "--grace must not be negative"),
        ("--concurrency=0", "--concurrency must be at least 1"),
    ],
)
def test_tenancy_migrate_refuses_options_that_cannot_work(option: str, message: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("tenancy_migrate", option)


@pytest.mark.postgresql
def test_a_batch_of_tenants_takes_its_locks_on_one_connection(make_tenant):
    """A connection costs milliseconds to open, a lock a fraction of one: a batch of a
    fleet rollout reuses one lock connection for all its tenants, and closes it after
    (CONN_MAX_AGE is 0 in the tests)."""
    tenants = [make_tenant(f"batched{n}") for n in range(3)]
    Customer.objects.filter(pk__in=[t.pk for t in tenants]).update(migrations_digest=OLD_DIGEST)
    opened = []
    original = connection.get_new_connection

    def counting(params):
        opened.append(params)
        return original(params)

    connection.get_new_connection = counting
    try:
        results = lifecycle.migrate_tenants([t.pk for t in tenants])
    finally:
        del connection.get_new_connection
    assert set(results.values()) == {"migrated"}
    assert len(opened) == 1
    assert locks._idle.get((os.getpid(), "default"), []) == []  # closed again after

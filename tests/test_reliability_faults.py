"""Faults, each with nothing lost: every tenant ends ready and current, or failed with
its error; no orphan schema; no tenant row without its schema.

Real `celery worker` processes, the suite's private Redis and PostgreSQL. The worker
SIGKILLed during provisioning is tests/test_worker.py's
``test_a_worker_killed_mid_provisioning_leaves_nothing_half_built``; PostgreSQL
restarted during a fan-out is scripts/reliability_pg_restart.py (it needs a cluster
of its own). See RELIABILITY.md.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from benchmarks.services import pg_connect
from tenancy import lifecycle, tasks
from tenancy._delivery import dispatch
from tenancy._migrating import recorder
from tenancy._migrating.plan import plan as migration_plan
from tenancy._orchestration import rollout
from tenancy._primitives import conf, states
from tenancy.models import TenantState
from tests.conftest import drop_all_tenant_storage
from tests.testapp.models import Customer, Project
from tests.workers import (
    Worker,
    hold_tenant_ddl,
    release_tenant_ddl,
    wait_for,
    waiting_on_auth_user,
)

pytestmark = pytest.mark.postgresql

OLD_DIGEST = "0" * 32


@pytest.fixture
def cleanup(transactional_db):
    yield
    drop_all_tenant_storage()


@pytest.fixture
def workers(broker, cleanup):
    """Start `celery worker` processes: ``workers(queue, concurrency=1, **env)``; every
    one is stopped (or killed) at the end of the test, whatever happened in it."""
    started: list[Worker] = []

    def start(queue: str, concurrency: int = 1, **env: str) -> Worker:
        worker = Worker(broker.url, queue, concurrency=concurrency, **env)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def _queue(name: str) -> str:
    return f"tenancy-rel-{name}-{os.getpid()}-{time.monotonic_ns()}"


def _use(settings, worker: Worker) -> None:
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = worker.queue


def _tenant_schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant%%'")
        return {row[0] for row in cursor.fetchall()}


def _tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def _make_outdated(tenant: Customer) -> None:
    """Put a ready tenant where it would be had it been provisioned before the app's
    first tenant migration: an empty schema (only the record table, empty) and an
    old digest. ``tenancy_migrate`` then applies testapp.0001_initial to it for real."""
    schema = tenant.db_schema
    tables = _tables(schema) - {recorder.RECORD_TABLE}
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TABLE " + ", ".join(f'"{schema}"."{t}"' for t in sorted(tables)) + " CASCADE"
        )
        cursor.execute(f'DELETE FROM "{schema}"."{recorder.RECORD_TABLE}"')
    Customer.objects.filter(pk=tenant.pk).update(migrations_digest=OLD_DIGEST, migrations_applied=0)


def _assert_nothing_lost(expected_tables: set[str] | None = None) -> None:
    """Every tenant ready and current (or failed with its error), one schema each, no orphan."""
    digest = migration_plan().digest
    tenants = list(Customer.objects.all())
    for tenant in tenants:
        if tenant.state == TenantState.FAILED:
            assert tenant.last_error, f"{tenant} failed without its error"
            continue
        assert tenant.state == TenantState.READY, (tenant, tenant.state, tenant.last_error)
        assert tenant.migrations_digest == digest, f"{tenant} is not current"
        if expected_tables is not None:
            assert _tables(tenant.db_schema) == expected_tables, tenant
        assert sorted(recorder.applied(tenant.db_schema, "default")) == sorted(
            migration_plan().keys
        )
    assert _tenant_schemas() == {t.db_schema for t in tenants}


def _outdated_fleet(count: int, prefix: str) -> tuple[list[Customer], set[str]]:
    """Create ``count`` tenants (eagerly) and make them all outdated; return them and
    the tables a current tenant has."""
    tenants = [Customer.objects.create(name=f"{prefix}{n}") for n in range(count)]
    full = _tables(tenants[0].db_schema)
    for tenant in tenants:
        _make_outdated(tenant)
    return tenants, full


# -- the worker SIGKILLed during a tenancy_migrate fan-out --


def test_a_worker_killed_mid_fan_out_leaves_every_tenant_at_its_old_state_then_resumes(
    workers, settings
):
    tenants, full = _outdated_fleet(5, "fan")
    killed = workers(_queue("fanout"))
    _use(settings, killed)
    blocker = hold_tenant_ddl()
    try:
        assert rollout.enqueue_all().sent == 5  # `tenancy_migrate --no-wait`
        wait_for(waiting_on_auth_user, 30, "the worker to be mid-migration")
        killed.kill()  # SIGKILL, parent and pool children, inside the migration's transaction
    finally:
        release_tenant_ddl(blocker)
    for tenant in tenants:
        wait_for(lambda t=tenant: not states.held_by_worker(t, "default"), 30, "the lock")
    # Nothing of the interrupted migration stayed: every tenant is exactly as it was.
    for tenant in Customer.objects.all():
        assert tenant.state == TenantState.READY
        assert tenant.migrations_digest == OLD_DIGEST
        assert _tables(tenant.db_schema) == {recorder.RECORD_TABLE}
        assert recorder.applied(tenant.db_schema, "default") == set()
    # The operator runs tenancy_migrate again once a worker is back: it resumes.
    survivor = workers(killed.queue, concurrency=2)
    report = rollout.run(concurrency=2, timeout=90)
    survivor.stop()
    assert not report.failed, report.failed
    assert sorted(o.pk for o in report.succeeded) == sorted(t.pk for t in tenants)
    _assert_nothing_lost(full)


def _rollout_thread(outcome: dict[str, object], **options: object) -> threading.Thread:
    """A thread that waits on ``rollout.run(**options)`` as tenancy_migrate does.

    ``outcome`` receives the report (or the error) and the pid of the database
    connection the rollout waits on.
    """

    def run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            outcome["report"] = rollout.run(**options)
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc
        finally:
            connection.close()

    return threading.Thread(target=run)


def test_a_waiting_tenancy_migrate_finishes_when_its_worker_is_killed_and_replaced(
    workers, settings
):
    """tenancy_migrate waits for the tenants it sent. When the worker that held them is
    SIGKILLed, their messages stay unacknowledged in Redis until the visibility timeout
    (an hour by default); the rollout must not wait for that once a new worker is up."""
    _, full = _outdated_fleet(5, "wait")
    killed = workers(_queue("fanout-wait"))
    _use(settings, killed)
    outcome: dict[str, object] = {}
    # grace: how long no worker may show signs of life before the rollout sends the
    # tenants again (short here; the default is RESEND_GRACE).
    thread = _rollout_thread(outcome, concurrency=2, timeout=30, grace=2)
    blocker = hold_tenant_ddl()
    try:
        thread.start()
        wait_for(waiting_on_auth_user, 30, "the worker to be mid-migration")
        killed.kill()
    finally:
        release_tenant_ddl(blocker)
    workers(killed.queue, concurrency=2)  # the replacement
    thread.join(timeout=45)
    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert not report.failed, (
        f"{len(report.failed)} tenant(s) never finished after the worker was replaced: "
        f"{[(o.name, o.detail) for o in report.failed]}"
    )
    assert report.resent >= 1
    _assert_nothing_lost(full)


# -- tenancy_migrate's own database connection lost while it waits --


def _allow_connections(allowed: bool) -> None:
    """Let new connections into the test database, or refuse them all (superusers too):
    from outside, the database looks down, while open connections (the worker's) go on."""
    params = connection.settings_dict
    # PostgreSQL refuses this from a session of that database: ask from "postgres".
    admin = pg_connect("postgres", user=params["USER"], host=params["HOST"], port=params["PORT"])
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                f'ALTER DATABASE "{params["NAME"]}" ALLOW_CONNECTIONS {str(allowed).lower()}'
            )
    finally:
        admin.close()


def test_a_waiting_tenancy_migrate_rides_out_the_loss_of_its_own_database_connection(
    workers, settings, caplog
):
    """A database restart or failover cuts the connection of the waiting rollout (the one
    that listens for notifications) and refuses new ones for a while; the workers go on.
    The rollout must reconnect once the database is back and finish the fleet, not die
    with a traceback (scripts/reliability_pg_restart.py does it with a real restart)."""
    tenants, full = _outdated_fleet(3, "own")
    worker = workers(_queue("fanout-own"))
    _use(settings, worker)
    outcome: dict[str, object] = {}
    thread = _rollout_thread(outcome, concurrency=1, timeout=60)
    blocker = hold_tenant_ddl()
    try:
        thread.start()
        wait_for(waiting_on_auth_user, 30, "the worker to be mid-migration")
        _allow_connections(False)
        try:
            with connection.cursor() as cursor:
                # With a timeout, pg_terminate_backend returns once the backend is gone.
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [outcome["pid"]])
                assert cursor.fetchone()[0]
            wait_for(
                lambda: "lost the database connection" in caplog.text or not thread.is_alive(),
                10,
                "the rollout to find its connection gone",
            )
            time.sleep(1)  # a few reconnection attempts fail meanwhile
        finally:
            _allow_connections(True)
    finally:
        release_tenant_ddl(blocker)
    thread.join(timeout=70)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert not report.failed, [(o.name, o.detail) for o in report.failed]
    assert sorted(o.pk for o in report.succeeded) == sorted(t.pk for t in tenants)
    assert "lost the database connection" in caplog.text
    _assert_nothing_lost(full)


# -- the PostgreSQL connection killed mid-provision --


def test_a_terminated_database_connection_mid_provisioning_is_retried_to_ready(workers, settings):
    worker = workers(_queue("terminate"), TENANCY_RETRY_BACKOFF="0.2")
    _use(settings, worker)
    blocker = hold_tenant_ddl()
    try:
        tenant = Customer.objects.create(name="terminated")
        [pid] = wait_for(waiting_on_auth_user, 30, "the worker to be mid-DDL")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0]
    finally:
        release_tenant_ddl(blocker)
    tenant.wait_until_ready(timeout=60)
    worker.stop()
    assert "terminating connection" in worker.output() or "closed" in worker.output()
    assert "Retry in" in worker.output()
    tenant.refresh_from_db()
    assert tenant.last_error == ""
    _assert_nothing_lost()
    assert Project.for_tenant(tenant).objects.create(name="after").pk


def test_a_terminated_database_connection_mid_fan_out_does_not_take_the_tenant_offline(
    workers, settings
):
    """A transient error while migrating (the connection cut: a failover, a proxy, an
    operator) leaves the schema as it was; the tenant must stay usable and end current,
    not be marked failed (for_tenant() refuses failed tenants) after a single try."""
    _, full = _outdated_fleet(3, "cut")
    worker = workers(_queue("fanout-cut"), TENANCY_RETRY_BACKOFF="0.2")
    _use(settings, worker)
    outcome: dict[str, object] = {}
    thread = _rollout_thread(outcome, concurrency=1, timeout=60)
    blocker = hold_tenant_ddl()
    try:
        thread.start()
        [pid] = wait_for(waiting_on_auth_user, 30, "the worker to be mid-migration")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        release_tenant_ddl(blocker)
    thread.join(timeout=70)
    assert "error" not in outcome, outcome
    report = outcome["report"]
    states = dict(Customer.objects.values_list("name", "state"))
    assert not report.failed, f"{[(o.name, o.detail) for o in report.failed]}; states now {states}"
    _assert_nothing_lost(full)


# -- the broker restarted during a burst of signups --


def test_a_broker_restarted_during_a_burst_of_signups_loses_no_tenant(broker, workers, settings):
    """The suite's private redis-server (never the shared one) is stopped mid-burst and
    started again empty (no persistence): queued messages are gone. The pending rows
    are the durable intent; one reconcile pass sends the work again."""
    worker = workers(_queue("broker"), concurrency=2)
    _use(settings, worker)
    total, clients = 60, 6
    created: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    outage = threading.Event()

    def client(names: list[str]) -> None:
        try:
            for name in names:
                tenant = Customer.objects.create(name=name)
                with lock:
                    created.append(tenant.pk)
                    if len(created) == total // 3:
                        outage.set()
                time.sleep(0.02)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    names = [f"burst{n:02d}" for n in range(total)]
    threads = [threading.Thread(target=client, args=(names[i::clients],)) for i in range(clients)]
    try:
        for thread in threads:
            thread.start()
        assert outage.wait(timeout=60)
        broker.stop()
        # Longer than a publish's own connection retries (about 6 s), so that some
        # signups find no broker at all and stay pending.
        time.sleep(8)
    finally:
        broker.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors, errors
    assert len(created) == total
    crews = [worker]
    if not worker.alive():
        # Celery itself can exit when the broker goes away in the middle of an ack
        # ("Unrecoverable error"); a supervisor (systemd, Kubernetes) starts it again.
        print("the worker exited with the broker; restarted:\n", worker.output()[-2000:])
        crews.append(workers(worker.queue, concurrency=2))
    lifecycle.reconcile(grace=0)
    try:
        wait_for(
            lambda: Customer.objects.filter(state=TenantState.READY).count() == total,
            120,
            "every tenant to be ready",
            interval=0.5,
        )
    except TimeoutError:
        states = Counter(Customer.objects.values_list("state", flat=True))
        logs = "\n".join(crew.output()[-3000:] for crew in crews)
        pytest.fail(f"not every tenant is ready: {dict(states)}; the worker logs:\n{logs}")
    for crew in crews:
        crew.stop()
    _assert_nothing_lost()
    events = Counter(
        line.split(" ", 1)[1]
        for crew in crews
        for line in crew.event_lines()
        if line.startswith("provisioned")
    )
    assert events == Counter({t.db_schema: 1 for t in Customer.objects.all()})


def _wait_for_acks(broker, queue: str) -> None:
    """Wait until no message sent to ``queue`` waits for its ack in the broker.

    Only this queue's: the workers that earlier tests killed leave theirs in Redis'
    ``unacked`` hash until the visibility timeout.
    """
    client = redis.Redis.from_url(broker.url)

    def acked() -> bool:
        entries = [json.loads(value) for value in client.hvals("unacked")]
        return not any(queue in (exchange, routing_key) for _, exchange, routing_key in entries)

    try:
        wait_for(acked, 30, f"the worker's acks on {queue}")
    finally:
        client.close()


def test_signups_while_the_broker_is_down_return_within_a_second(broker, workers, settings):
    """dispatch() never fails a request when the broker is down, and it must not hold it
    either: the pending row is the durable intent and the reconciler sends it later.
    The process was publishing before the outage (its pooled connection is warm), as a
    web process is. Before the fix, the first failure was quick and every later signup
    waited about 6 s in kombu's reconnection (tenancy._delivery.dispatch says why)."""
    worker = workers(_queue("down"))
    _use(settings, worker)
    before = Customer.objects.create(name="patient")
    before.wait_until_ready(timeout=30)
    # Stop the broker only once the worker's ack has reached it: a Celery worker that
    # loses the broker in the middle of an ack can die ("Unrecoverable error"), which
    # is not what this test is about.
    _wait_for_acks(broker, worker.queue)
    broker.stop()
    durations = []
    try:
        for number in range(3):
            started = time.monotonic()
            tenant = Customer.objects.create(name=f"patient{number}")
            durations.append(time.monotonic() - started)
            assert Customer.objects.get(pk=tenant.pk).state == TenantState.PENDING
    finally:
        broker.start()
    print("signups while the broker was down took", [f"{d:.3f}s" for d in durations])
    assert max(durations) < 1.0, (
        f"signups took {', '.join(f'{d:.1f}s' for d in durations)} while the broker was down"
    )
    # Failing fast left nothing broken: the next signup is sent (no reconcile needed)...
    after = Customer.objects.create(name="patient_after")
    after.wait_until_ready(timeout=60)
    assert Customer.objects.filter(state=TenantState.PENDING).count() == 3
    # ...and the reconciler sends the three that stayed pending.
    assert len(lifecycle.reconcile(grace=0).pending) == 3
    wait_for(
        lambda: Customer.objects.filter(state=TenantState.READY).count() == 5,
        60,
        "every tenant to be ready",
        interval=0.2,
    )
    worker.stop()
    _assert_nothing_lost()


def test_the_publish_settings_reach_kombu(broker, settings):
    """TENANCY_PUBLISH_RETRY_POLICY is what bounds a send while the broker is down: a
    policy that sleeps between attempts holds the caller for those sleeps (the default
    does not sleep). Values that cannot work are refused."""
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = _queue("policy")
    policy = {"max_retries": 2, "interval_start": 0.4, "interval_max": 1}
    settings.TENANCY_PUBLISH_RETRY_POLICY = policy
    broker.stop()
    try:
        started = time.monotonic()
        assert dispatch.publish(tasks.provision_tenant, (0,)) is False
        waited = time.monotonic() - started
    finally:
        broker.start()
    assert 0.8 <= waited < 5, f"the send gave up after {waited:.2f}s"
    for wrong in (0, -1, "1", True):
        settings.TENANCY_PUBLISH_CONNECT_TIMEOUT = wrong
        with pytest.raises(ImproperlyConfigured, match="TENANCY_PUBLISH_CONNECT_TIMEOUT"):
            conf.publish_connect_timeout()
    settings.TENANCY_PUBLISH_RETRY_POLICY = [("max_retries", 1)]
    with pytest.raises(ImproperlyConfigured, match="TENANCY_PUBLISH_RETRY_POLICY"):
        conf.publish_retry_policy()


def test_a_signup_while_the_broker_is_stalled_waits_for_it_and_is_sent(
    broker, workers, settings, caplog
):
    """The bound is on connecting to a broker that is down, not on one that answers late:
    a publish to a stalled broker (SIGSTOP: a long fork, a saturated host) waits for it,
    longer than TENANCY_PUBLISH_CONNECT_TIMEOUT, and the tenant is provisioned without
    the reconciler."""
    worker = workers(_queue("stalled"))
    _use(settings, worker)
    settings.TENANCY_PUBLISH_CONNECT_TIMEOUT = 0.5
    Customer.objects.create(name="early").wait_until_ready(timeout=30)  # a warm connection
    _wait_for_acks(broker, worker.queue)
    os.kill(broker.process.pid, signal.SIGSTOP)
    resume = threading.Timer(2.0, os.kill, (broker.process.pid, signal.SIGCONT))
    resume.start()
    try:
        started = time.monotonic()
        late = Customer.objects.create(name="late")
        waited = time.monotonic() - started
    finally:
        resume.join()
        os.kill(broker.process.pid, signal.SIGCONT)
    assert "could not enqueue" not in caplog.text
    assert waited > 1.5, f"the signup returned after {waited:.2f}s, before the broker resumed"
    late.wait_until_ready(timeout=60)
    worker.stop()
    _assert_nothing_lost()


# -- a provisioning receiver that raises --


def test_a_raising_provisioned_receiver_in_a_worker_cannot_undo_or_fail_the_provisioning(
    workers, settings
):
    """tests/testapp/receivers.py's tenant_provisioned receiver appends to the file named
    by TENANCY_TEST_EVENTS; pointed at a directory, it raises IsADirectoryError in the
    worker, like a welcome e-mail whose server is down."""
    with tempfile.TemporaryDirectory() as directory:
        worker = workers(_queue("receiver"), TENANCY_TEST_EVENTS=directory)
        _use(settings, worker)
        first = Customer.objects.create(name="welcomed")
        second = Customer.objects.create(name="welcomed2")
        first.wait_until_ready(timeout=30)
        second.wait_until_ready(timeout=30)
        wait_for(lambda: worker.output().count("succeeded in") >= 2, 30, "both tasks")
        worker.stop()
    output = worker.output()
    assert "IsADirectoryError" in output and "receiver" in output
    assert "raised unexpected" not in output and "Retry in" not in output
    assert output.count("tenancy.provision_tenant") and output.count("'ready'") == 2
    _assert_nothing_lost()


# -- the broker restarted under a waiting tenancy_migrate --


def test_a_broker_restart_during_tenancy_migrate_fails_no_tenant(workers, broker, settings):
    """Redis restarts (3 s, empty) while tenancy_migrate still has batches to send: the
    sends that fail are retried with backoff, the batches lost with the old Redis are
    sent again, and the command ends with every tenant migrated."""
    tenants, full = _outdated_fleet(8, "blip")
    worker = workers(_queue("blip"))
    _use(settings, worker)
    outcome: dict[str, object] = {}
    thread = _rollout_thread(outcome, concurrency=1, batch_size=2, timeout=120, grace=2)
    blocker = hold_tenant_ddl()
    try:
        thread.start()
        wait_for(waiting_on_auth_user, 30, "the first batch to be mid-migration")
        broker.stop()
        release_tenant_ddl(blocker)
        blocker = None
        time.sleep(3)
    finally:
        if blocker is not None:
            release_tenant_ddl(blocker)
        broker.start()
    if not worker.alive():  # Celery can exit when Redis goes mid-ack; a supervisor restarts it
        workers(worker.queue)
    thread.join(timeout=150)
    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert [(o.name, o.detail) for o in report.failed] == []
    assert sorted(o.pk for o in report.succeeded) == sorted(t.pk for t in tenants)
    _assert_nothing_lost(full)


def test_tenancy_migrate_no_wait_reports_the_sends_that_failed(broker, make_tenant, settings):
    tenants = [make_tenant(f"unsent{n}") for n in range(3)]
    Customer.objects.filter(pk__in=[t.pk for t in tenants]).update(migrations_digest=OLD_DIGEST)
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = _queue("unsent")
    broker.stop()
    try:
        out = io.StringIO()
        with pytest.raises(CommandError, match="Could not send the migration of 3 tenant"):
            call_command("tenancy_migrate", "--no-wait", stdout=out)
    finally:
        broker.start()
    assert "Enqueued 0 tenant migration(s)." in out.getvalue()

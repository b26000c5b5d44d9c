"""Multi-step operations survive the death of the process running them.

A move is recorded before it freezes the tenant; provisioning on a database
other than the shared one commits the schema before the row: whatever step a
``kill -9`` interrupts, the reconciler (or the next run of the command) finishes
the operation or rolls it back, and the tenant is never left read-only or stuck.
Real processes are killed here, on the real PostgreSQL.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connections, transaction

from benchmarks.services import pg_connect, wait_for
from tenancy._primitives import locks, ownership, states, storage
from tenancy.models import TenantOperation, TenantState, Tombstone
from tests.support import not_on_citus_moves
from tests.testapp.models import Customer, Project
from tests.workers import ROOT, Worker

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True, databases=["default", "other"]),
]


def _env(**extra: str) -> dict[str, str]:
    """The environment of a process of the test project, on the test databases."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "PGDATABASE": connections["default"].settings_dict["NAME"],
        "PGDATABASE_OTHER": connections["other"].settings_dict["NAME"],
        "TENANCY_DATABASES": "default,other",
        **extra,
    }


def _hold_name(alias: str, schema: str):
    """Hold the per-name lock that building or dropping ``schema`` on ``alias`` takes:
    whoever builds or drops it waits, mid-operation, until :func:`_release`."""
    blocker = pg_connect(connections[alias].settings_dict["NAME"])
    blocker.autocommit = True
    with blocker.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [locks.key_id(f"schema:{schema}")])
    return blocker


def _waiting_on(alias: str, schema: str) -> bool:
    """Return whether some backend waits for the per-name lock of ``schema`` on ``alias``."""
    key = locks.key_id(f"schema:{schema}") & 0xFFFFFFFFFFFFFFFF
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s)",
            [key >> 32, key & 0xFFFFFFFF],
        )
        return bool(cursor.fetchone()[0])


def _move_in_a_process(name: str, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "django", "tenancy_move", name, target],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _writable(tenant: Customer) -> bool:
    try:
        with transaction.atomic():
            Project.for_tenant(tenant).objects.create(name="probe")
            transaction.set_rollback(True)
    except DatabaseError:
        return False
    return True


@not_on_citus_moves
def test_a_move_killed_after_freezing_the_tenant_is_rolled_back_and_can_run_again(
    two_databases,
):
    tenant = Customer.objects.create(name="mover", database="default")
    Project.for_tenant(tenant).objects.create(name="kept")
    blocker = _hold_name("other", tenant.db_schema)  # the target's build waits here
    mover = _move_in_a_process("mover", "other")
    try:
        wait_for(lambda: _waiting_on("other", tenant.db_schema), 30, "the move to be mid-way")
        [op] = TenantOperation.objects.all()
        assert op.step == TenantOperation.Step.FROZEN
        assert not _writable(tenant)  # read-only while it moves
        os.kill(mover.pid, signal.SIGKILL)  # kill -9 of the moving process
        mover.wait()
    finally:
        mover.kill()
        blocker.close()
    # Its lock died with it: the reconciler sees an interrupted move and rolls it back.
    output = _reconcile()
    assert "rolled back the move to other" in output
    tenant.refresh_from_db()
    assert tenant.database == "default"
    assert _writable(tenant)
    assert not storage.schema_exists(tenant.db_schema, "other")
    op.refresh_from_db()
    assert op.step == TenantOperation.Step.UNDONE and op.finished_at is not None
    # And the move runs again.
    call_command("tenancy_move", "mover", "other", stdout=_null())
    tenant.refresh_from_db()
    assert tenant.database == "other"
    assert list(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == ["kept"]


@not_on_citus_moves
def test_a_move_whose_database_connection_drops_leaves_the_tenant_writable(two_databases):
    """The mover's connection to the source database is terminated mid-move: the move
    fails, is rolled back in place, and nothing stays frozen."""
    tenant = Customer.objects.create(name="dropped", database="default")
    Project.for_tenant(tenant).objects.create(name="kept")
    blocker = _hold_name("other", tenant.db_schema)
    mover = _move_in_a_process("dropped", "other")
    try:
        wait_for(lambda: _waiting_on("other", tenant.db_schema), 30, "the move to be mid-way")
        with connections["other"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND NOT granted"
            )
        output, _ = mover.communicate(timeout=60)
    finally:
        mover.kill()
        blocker.close()
    assert mover.returncode != 0, output
    _reconcile()  # whatever the dying command could not undo itself
    tenant.refresh_from_db()
    assert tenant.database == "default" and _writable(tenant)
    assert not TenantOperation.objects.filter(finished_at__isnull=True).exists()


@not_on_citus_moves
def test_a_move_killed_after_its_switch_is_finished_by_the_reconciler(two_databases):
    tenant = Customer.objects.create(name="switched", database="default")
    Project.for_tenant(tenant).objects.create(name="kept")
    blocker = _hold_name("default", tenant.db_schema)  # the source's drop waits here
    mover = _move_in_a_process("switched", "other")
    try:
        wait_for(lambda: _waiting_on("default", tenant.db_schema), 30, "the source's drop")
        os.kill(mover.pid, signal.SIGKILL)
        mover.wait()
    finally:
        mover.kill()
        blocker.close()
    [op] = TenantOperation.objects.all()
    assert op.step == TenantOperation.Step.SWITCHED and op.finished_at is None
    tenant.refresh_from_db()
    assert tenant.database == "other"
    assert storage.schema_exists(tenant.db_schema, "default")  # not dropped yet
    output = _reconcile()
    assert "finished the move to other" in output
    op.refresh_from_db()
    assert op.step == TenantOperation.Step.DONE
    assert not storage.schema_exists(tenant.db_schema, "default")
    assert not Tombstone.objects.filter(done_at__isnull=True).exists()
    assert list(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == ["kept"]
    assert _writable(tenant)


@pytest.fixture
def ready_update_sleeps_once():
    """The first UPDATE of a tenant row to 'ready' sleeps 60 s (a sequence, which a
    rollback does not undo, counts): a worker provisioning on another database is then
    held after its schema committed there, before the row commits here."""
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE SEQUENCE tenancy_test_ready_once")
        cursor.execute(
            "CREATE FUNCTION tenancy_test_slow_ready() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.state = 'ready' AND nextval('tenancy_test_ready_once') = 1 THEN "
            "PERFORM pg_sleep(60); END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER tenancy_test_slow_ready BEFORE UPDATE ON testapp_customer "
            "FOR EACH ROW EXECUTE FUNCTION tenancy_test_slow_ready()"
        )
    yield
    with connections["default"].cursor() as cursor:
        cursor.execute("DROP TRIGGER tenancy_test_slow_ready ON testapp_customer")
        cursor.execute("DROP FUNCTION tenancy_test_slow_ready()")
        cursor.execute("DROP SEQUENCE tenancy_test_ready_once")


def test_provisioning_on_another_database_killed_before_its_ready_commit_is_finished(
    two_databases, ready_update_sleeps_once, broker, settings
):
    queue = f"tenancy-dur-{os.getpid()}"
    worker = Worker(
        broker.url,
        queue,
        concurrency=1,
        PGDATABASE_OTHER=connections["other"].settings_dict["NAME"],
        TENANCY_DATABASES="default,other",
    ).start()
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = queue
    try:
        tenant = Customer.objects.create(name="remote", database="other")
        owner = ownership.tenant_owner(tenant.incarnation)
        wait_for(
            lambda: ownership.owns_schema(tenant.db_schema, "other", owner),
            60,
            "the schema to commit on the other database",
        )
        worker.kill()  # while its UPDATE to "ready" sleeps in the trigger
    finally:
        worker.stop()
    with connections["default"].cursor() as cursor:  # the killed worker's UPDATE goes too
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
            "'UPDATE \"testapp_customer\"%%' AND pid <> pg_backend_pid()"
        )
    tenant.refresh_from_db()
    assert tenant.state == TenantState.PROVISIONING
    settings.TENANCY_EAGER = True
    wait_for(lambda: not _held(tenant), 30, "the killed worker's lock to die")
    _reconcile()
    tenant.refresh_from_db()
    assert tenant.state == TenantState.READY, tenant.last_error
    assert Project.for_tenant(tenant).objects.create(name="works").pk


def _held(tenant: Customer) -> bool:
    return states.held_by_worker(tenant, "default")


def _reconcile() -> str:
    out = _null()
    call_command("tenancy_reconcile", stdout=out)
    return out.getvalue()


def _null() -> io.StringIO:
    return io.StringIO()


def test_a_tenant_deleted_while_its_database_is_down_is_dropped_once_it_is_back(
    two_databases,
):
    """The delete writes the tombstone and returns; the drop fails while the database is
    unreachable (kept on the tombstone), and the reconciler drops it once it is back."""
    tenant = Customer.objects.create(name="offline", database="other")
    Project.for_tenant(tenant).objects.create(name="gone with it")
    settings_dict = connections["other"].settings_dict
    port = settings_dict["PORT"]
    connections["other"].close()
    settings_dict["PORT"] = "1"  # the database server is unreachable
    try:
        tenant.delete()  # eager: its drop runs (and fails) inline
        [tomb] = Tombstone.objects.filter(schema="tenant_offline")
        assert tomb.done_at is None and "OperationalError" in tomb.last_error
    finally:
        connections["other"].close()
        settings_dict["PORT"] = port
    assert storage.schema_exists("tenant_offline", "other")
    _reconcile()
    tomb.refresh_from_db()
    assert tomb.done_at is not None and tomb.last_error == ""
    assert not storage.schema_exists("tenant_offline", "other")

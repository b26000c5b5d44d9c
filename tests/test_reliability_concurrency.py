"""Concurrency: many signups at once, create-delete-create of one key, and work that
overlaps a provisioning, all through real `celery worker` processes on PostgreSQL.

Each test says what protection it checks; see RELIABILITY.md for the whole suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from benchmarks.services import pg_connect
from tenancy._migrating import recorder
from tenancy._migrating.plan import plan as migration_plan
from tenancy._primitives import locks, storage
from tenancy.models import TenantState, Tombstone
from tests.conftest import drop_all_tenant_storage
from tests.test_migrations_flow import Shop, shop_postgresql  # noqa: F401 - fixture
from tests.testapp.models import Customer, Project
from tests.workers import ROOT, Worker, hold_tenant_ddl, release_tenant_ddl, wait_for

pytestmark = pytest.mark.postgresql

SIGNUPS = 200
CLIENTS = 8


@pytest.fixture
def two_workers(broker, transactional_db, settings):
    """Two `celery worker` processes (one pool process each) on a queue of this test."""
    queue = f"tenancy-rel-conc-{os.getpid()}-{time.monotonic_ns()}"
    workers = [Worker(broker.url, queue, concurrency=1) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        settings.TENANCY_EAGER = False
        settings.TENANCY_CELERY_QUEUE = queue
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        drop_all_tenant_storage()


def _schemas(pattern: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [pattern])
        return [row[0] for row in cursor.fetchall()]


def _provisioned_events(workers: list[Worker]) -> Counter[str]:
    """How many times each schema's tenant_provisioned receiver ran, over every worker."""
    lines = [line for worker in workers for line in worker.event_lines()]
    return Counter(line.split(" ", 1)[1] for line in lines if line.startswith("provisioned "))


def _state(pk) -> str | None:
    return Customer.objects.filter(pk=pk).values_list("state", flat=True).first()


def test_200_signups_from_8_clients_on_2_workers_each_end_ready_with_one_schema(two_workers):
    names = [f"sig{number:03d}" for number in range(SIGNUPS)]
    errors: list[BaseException] = []

    def client(mine: list[str]) -> None:
        try:
            for name in mine:
                Customer.objects.create(name=name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(names[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    signed_up = time.monotonic() - started

    def settled() -> bool:
        states = Counter(Customer.objects.values_list("state", flat=True))
        assert states[TenantState.FAILED] == 0, list(
            Customer.objects.filter(state=TenantState.FAILED).values_list("name", "last_error")
        )
        return states[TenantState.READY] == SIGNUPS

    wait_for(settled, 240, f"{SIGNUPS} tenants to be ready", interval=0.5)
    tenants = list(Customer.objects.order_by("name"))
    assert [t.name for t in tenants] == names
    assert all(t.last_error == "" for t in tenants)
    assert all(t.migrations_digest == migration_plan().digest for t in tenants)
    # Exactly one schema per tenant, and no other tenant-like schema (orphan, pool).
    schemas = _schemas("tenant%")
    assert len(schemas) == SIGNUPS
    assert set(schemas) == {t.db_schema for t in tenants}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%s)",
            [[t.db_schema for t in tenants]],
        )
        assert cursor.fetchone()[0] == SIGNUPS
        # Every schema is complete: the same tables everywhere, the plan recorded once.
        cursor.execute(
            "SELECT schemaname, count(*) FROM pg_tables WHERE schemaname LIKE 'tenant%%' "
            "GROUP BY schemaname"
        )
        table_counts = dict(cursor.fetchall())
    assert len(set(table_counts.values())) == 1 and min(table_counts.values()) > 5
    for tenant in tenants[:: SIGNUPS // 20]:
        assert sorted(recorder.applied(tenant.db_schema, "default")) == sorted(
            migration_plan().keys
        )
    # Each tenant was provisioned (its ready signal sent) exactly once, by one of the workers.
    events = _provisioned_events(two_workers)
    assert events == Counter({t.db_schema: 1 for t in tenants})
    assert all(w.output().count("tenancy.provision_tenant") for w in two_workers), (
        "both workers should have taken part"
    )
    print(f"{SIGNUPS} signups from {CLIENTS} clients in {signed_up:.1f}s")


def test_create_delete_recreate_of_one_key_never_drops_the_new_schema_or_shows_old_rows(
    two_workers,
):
    """Each incarnation of the key gets a schema of its own (a deleted tenant's name is
    never given again), and a drop only removes storage marked with its incarnation:
    the re-created tenant's schema is neither dropped nor shares old data."""
    old_oids = []
    for round_ in range(4):
        old = Customer.objects.create(name="phoenix")
        if round_ % 2 == 0:
            # Ready, with data, then deleted: its drop races the next signup.
            old.wait_until_ready(timeout=60)
            Project.for_tenant(old).objects.create(name=f"old-{round_}")
            old_oids.append(storage.schema_oid(old.db_schema, "default"))
        # Odd rounds: deleted while pending or being provisioned.
        old.delete()
    new = Customer.objects.create(name="phoenix")
    new.wait_until_ready(timeout=60)
    wait_for(
        lambda: not Tombstone.objects.filter(done_at__isnull=True).exists(),
        60,
        "every drop to be done",
    )
    time.sleep(1)  # any late duplicate delivery would act now
    assert Tombstone.objects.count() == 4
    assert list(Customer.objects.values_list("pk", "state")) == [(new.pk, TenantState.READY)]
    assert _schemas("tenant\\_phoenix%") == [new.db_schema]  # the old ones are dropped
    assert new.db_schema != "tenant_phoenix"  # that name was the first incarnation's
    oid = storage.schema_oid(new.db_schema, "default")
    assert oid not in old_oids
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT name FROM "{new.db_schema}"."testapp_project"')
        assert cursor.fetchall() == []  # none of the old tenants' rows
    assert Project.for_tenant(new).objects.create(name="new").pk
    # A late (re)delivery of every old drop still leaves the new schema alone.
    from tenancy import lifecycle

    for tomb in Tombstone.objects.all():
        assert lifecycle.drop_tombstone(tomb.pk) == "done"
    Tombstone.objects.update(done_at=None)  # as if the drops had never finished
    for tomb in Tombstone.objects.all():
        assert lifecycle.drop_tombstone(tomb.pk) == "kept"
    assert storage.schema_oid(new.db_schema, "default") == oid
    assert list(Project.for_tenant(new).objects.values_list("name", flat=True)) == ["new"]


def test_delete_during_provisioning_leaves_no_row_and_no_schema(two_workers):
    blocker = hold_tenant_ddl()
    try:
        tenant = Customer.objects.create(name="fleeting")
        wait_for(lambda: _state(tenant.pk) == TenantState.PROVISIONING, 30, "provisioning")
        tenant.delete()  # the worker is mid-DDL, inside its transaction
        assert storage.schema_oid(tenant.db_schema, "default") is None
    finally:
        release_tenant_ddl(blocker)
    wait_for(lambda: not Tombstone.objects.filter(done_at__isnull=True).exists(), 60, "the drop")
    wait_for(
        lambda: any("deleted while being provisioned" in w.output() for w in two_workers),
        30,
        "the provisioning to give up",
    )
    assert not Customer.objects.exists()
    assert _schemas("tenant%") == []
    assert _provisioned_events(two_workers) == Counter()


# -- migrate during provisioning: a deploy adds a migration while an old worker provisions --


def _shop_state(shop: Shop, name: str) -> tuple[str, str] | None:
    rows = shop.query("SELECT state, migrations_digest FROM shop_store WHERE name = %s", (name,))
    return rows[0] if rows else None


def _shop_worker(shop: Shop, stage: int, queue: str) -> Worker:
    env = {k: v for k, v in shop.env.items() if k.startswith("SHOP_")}
    return Worker(
        shop.env["CELERY_BROKER_URL"],
        queue,
        concurrency=1,
        app="tests.migrations_project.celery_app",
        DJANGO_SETTINGS_MODULE="tests.migrations_project.settings",
        PYTHONPATH=shop.env["PYTHONPATH"],
        **{**env, "SHOP_STAGE": str(stage)},
    ).start()


def test_tenancy_migrate_during_an_old_workers_provisioning_ends_with_the_tenant_current(
    shop_postgresql,  # noqa: F811 - the fixture imported above
):
    """A deploy adds a migration while a worker of the previous release is still
    provisioning a tenant (a warm shutdown lets it finish): once everything has
    settled, that tenant must be at the new migrations like the others."""
    shop = shop_postgresql
    old_queue, new_queue = f"shop-old-{os.getpid()}", f"shop-new-{os.getpid()}"
    shop.run("makemigrations", "shop")
    shop.run("migrate")
    old_worker = _shop_worker(shop, 1, old_queue)
    new_worker = None
    blocker = None
    migrate = None
    try:
        shop.env["TENANCY_CELERY_QUEUE"] = old_queue
        shop.run("createtenant", "name=alpha", "--wait", "60")
        # The release with migration 0002 is deployed: shared migrate, new workers.
        shop.stage = 2
        shop.run("makemigrations", "shop")
        shop.run("migrate")
        new_worker = _shop_worker(shop, 2, new_queue)
        # A signup is being provisioned by the old worker, held inside its DDL
        # transaction (the shop's models have no foreign key to auth_user: hold the
        # per-schema transaction lock that creating a schema takes instead).
        blocker = pg_connect(shop.db_name)
        blocker.autocommit = True
        with blocker.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [locks.key_id("schema:tenant_late")])
        shop.stage = 1  # the signup comes through the old release's web process
        shop.run("createtenant", "name=late")
        wait_for(lambda: (_shop_state(shop, "late") or ("",))[0] == "provisioning", 30, "late")
        # The operator runs tenancy_migrate with the new release.
        shop.stage = 2
        shop.env["TENANCY_CELERY_QUEUE"] = new_queue
        migrate = subprocess.Popen(
            [sys.executable, "-m", "django", "tenancy_migrate", "--timeout", "120"],
            cwd=ROOT,
            env={**shop.env, "SHOP_STAGE": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        alpha_digest = _shop_state(shop, "alpha")[1]
        wait_for(
            lambda: _shop_state(shop, "alpha")[1] != alpha_digest or migrate.poll() is not None,
            60,
            "alpha to be migrated",
        )
        time.sleep(1)
        blocker.close()  # the old worker finishes its provisioning
        output, _ = migrate.communicate(timeout=150)
        wait_for(lambda: _shop_state(shop, "late")[0] == "ready", 60, "late to be ready")
        time.sleep(2)  # anything still in flight gets its chance
        alpha, late = _shop_state(shop, "alpha"), _shop_state(shop, "late")
        assert migrate.returncode == 0, output
        assert alpha[0] == "ready" and alpha[1] != alpha_digest
        assert "priority" in shop.columns("tenant_alpha", "shop_note")
        # The tenant provisioned by the old release during the rollout is current too.
        assert late == alpha, (
            f"late ended {late}, alpha {alpha}; tenancy_migrate said:\n{output}\n"
            f"late's columns: {shop.columns('tenant_late', 'shop_note')}"
        )
        assert "priority" in shop.columns("tenant_late", "shop_note")
    finally:
        if migrate is not None and migrate.poll() is None:
            migrate.kill()
        if blocker is not None:
            blocker.close()
        old_worker.stop()
        if new_worker is not None:
            new_worker.stop()


def test_tenancy_migrate_stops_at_once_when_its_workers_run_an_older_release(
    shop_postgresql,  # noqa: F811 - the fixture imported above
):
    """A deploy ships migration 0002, but the workers were not restarted: they still run
    the previous code. Each batch carries the plan the command expects; the old worker
    migrates nothing, answers that it is on another version, and the command exits
    non-zero naming it, instead of waiting for its timeout."""
    shop = shop_postgresql
    queue = f"shop-stale-{os.getpid()}"
    shop.run("makemigrations", "shop")
    shop.run("migrate")
    old_worker = _shop_worker(shop, 1, queue)
    try:
        shop.env["TENANCY_CELERY_QUEUE"] = queue
        shop.run("createtenant", "name=alpha", "--wait", "60")
        before = _shop_state(shop, "alpha")
        shop.stage = 2  # the new release: its shared migrate ran, its workers did not start
        shop.run("makemigrations", "shop")
        shop.run("migrate")
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "django", "tenancy_migrate", "--timeout", "120"],
            cwd=ROOT,
            env={**shop.env, "SHOP_STAGE": "2"},
            capture_output=True,
            text=True,
            timeout=150,
        )
        took = time.monotonic() - started
    finally:
        old_worker.stop()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "1 worker(s) run another version of the code" in output, output
    assert "Restart them on the new code" in output
    assert took < 60, f"the command took {took:.0f}s: it waited instead of stopping"
    assert _shop_state(shop, "alpha") == before  # the old worker migrated nothing

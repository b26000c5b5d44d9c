"""Tenants across several PostgreSQL databases: placement, routing, lifecycle, moves."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DatabaseError, OperationalError, connections, transaction
from django.test.utils import CaptureQueriesContext

from tenancy import lifecycle
from tenancy._delivery import dispatch
from tenancy._migrating import executor
from tenancy._migrating.plan import plan as migration_plan
from tenancy._orchestration import migrate, move, rollout
from tenancy._primitives import provisioning, storage
from tenancy.exceptions import MoveError
from tenancy.models import PoolSchema, TenantState, Tombstone
from tests.support import drop_storage, not_on_citus_moves, owner_of
from tests.testapp.models import Customer, Project, Report

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True, databases=["default", "other"]),
]


def place(name: str, **fields) -> Customer:
    tenant = Customer.objects.create(name=name, **fields)
    tenant.refresh_from_db()
    return tenant


def test_new_tenants_go_to_the_database_with_the_fewest(two_databases):
    placed = [place(f"p{i}").database for i in range(4)]
    assert sorted(placed) == ["default", "default", "other", "other"]
    assert Customer.objects.using("other").count() == 0  # the rows stay shared


def test_a_custom_placement_callable_decides(two_databases, settings):
    settings.TENANCY_PLACEMENT = "tests.test_databases.everyone_on_other"
    assert place("custom").database == "other"


def everyone_on_other(tenant, aliases):
    return "other"


def test_tenant_classes_read_and_write_their_tenants_database(two_databases):
    tenant = place("remote", database="other")
    assert storage.schema_exists(tenant.db_schema, "other")
    assert not storage.schema_exists(tenant.db_schema, "default")
    owner = User.objects.create(username="boss")  # on the shared database
    project = Project.for_tenant(tenant).objects.create(name="p", owner=owner)
    Report.for_tenant(tenant).objects.create(project=project)
    fetched = Report.for_tenant(tenant).objects.select_related("project").get()
    assert fetched._state.db == "other" and fetched.project.name == "p"
    assert Project.for_tenant(tenant).objects.get().owner == owner  # read from the shared db


class ProjectRouter:
    """A project's own router, of no opinion on tenant classes."""

    def db_for_read(self, model, **hints):
        return None

    db_for_write = db_for_read


def test_overriding_database_routers_keeps_tenant_classes_on_their_database(two_databases):
    """override_settings(DATABASE_ROUTERS=...) makes Django build a new router list:
    the tenant router stays first in it (before, tenant classes went to "default"
    for the rest of the run: 'relation ... does not exist', or another database)."""
    from django.test import override_settings

    tenant = place("routed", database="other")
    for routers in (["tests.test_databases.ProjectRouter"], []):
        with override_settings(DATABASE_ROUTERS=routers):
            Project.for_tenant(tenant).objects.create(name=f"with {routers}")
    Project.for_tenant(tenant).objects.create(name="after")
    names = set(Project.for_tenant(tenant).objects.using("other").values_list("name", flat=True))
    assert names == {"with ['tests.test_databases.ProjectRouter']", "with []", "after"}
    assert Project.for_tenant(tenant).objects.get(name="after")._state.db == "other"


def test_many_to_many_to_a_shared_model_reads_and_writes_from_another_database(two_databases):
    """The shared table is not on "other": reads go through ids, never a cross-database join."""
    tenant = place("m2m_remote", database="other")
    ann, bob, cy = (User.objects.create(username=name) for name in ("ann", "bob", "cy"))
    TenantProject = Project.for_tenant(tenant)
    first = TenantProject.objects.create(name="first")
    second = TenantProject.objects.create(name="second")
    first.watchers.add(ann, bob)
    second.watchers.add(bob.pk)

    assert list(first.watchers.order_by("username")) == [ann, bob]
    assert first.watchers.count() == 2 and second.watchers.exists()
    assert list(first.watchers.filter(username="bob")) == [bob]
    assert first.watchers.all()[0]._state.db == "default"  # read from the shared database
    first.watchers.set([bob, cy])
    assert sorted(first.watchers.values_list("username", flat=True)) == ["bob", "cy"]
    first.watchers.remove(cy)
    assert list(first.watchers.all()) == [bob]

    with (
        CaptureQueriesContext(connections["other"]) as on_other,
        CaptureQueriesContext(connections["default"]) as on_shared,
    ):
        projects = list(TenantProject.objects.prefetch_related("watchers").order_by("name"))
        watched = {p.name: [u.username for u in p.watchers.all()] for p in projects}
    assert watched == {"first": ["bob"], "second": ["bob"]}
    # the projects and their through rows, then the users: no query per project
    assert len(on_other.captured_queries) == 2 and len(on_shared.captured_queries) == 1
    assert projects[0].watchers.all()[0] is not projects[1].watchers.all()[0]

    second.watchers.clear()
    assert not second.watchers.exists()
    assert list(TenantProject.objects.filter(watchers=bob)) == [first]  # tenant-side join
    # rows created through the relation go to the shared database, linked on the tenant's
    eve = second.watchers.create(username="eve")
    fay, created = second.watchers.get_or_create(username="fay")
    assert created and User.objects.filter(username__in=["eve", "fay"]).count() == 2
    assert second.watchers.get_or_create(username="fay") == (fay, False)
    assert sorted(second.watchers.values_list("username", flat=True)) == ["eve", "fay"]
    assert {eve.pk, fay.pk} == {u.pk for u in User.objects.filter(username__in=["eve", "fay"])}
    assert storage.schema_exists(tenant.db_schema, "other")


def test_many_to_many_to_a_shared_model_on_the_shared_database_keeps_djangos_join(two_databases):
    tenant = place("m2m_local", database="default")
    user = User.objects.create(username="dee")
    project = Project.for_tenant(tenant).objects.create(name="local")
    project.watchers.add(user)
    with CaptureQueriesContext(connections["default"]) as queries:
        assert list(project.watchers.all()) == [user]
    assert len(queries.captured_queries) == 1 and "JOIN" in queries.captured_queries[0]["sql"]


def test_drop_and_reconcile_work_per_database(two_databases):
    tenant = place("gone", database="other")
    tenant.delete()
    assert not storage.schema_exists("tenant_gone", "other")
    assert Tombstone.objects.get().database == "other"
    Customer._base_manager.bulk_create([Customer(name="bulk_other", database="other")])
    lifecycle.reconcile(grace=0)
    assert Customer.objects.get(name="bulk_other").state == TenantState.READY
    assert storage.schema_exists("tenant_bulk_other", "other")


def test_reconcile_places_a_bulk_created_tenant_before_sending_it_to_its_databases_queue(
    two_databases, settings, broker
):
    """A tenant inserted without save() has no database yet; its provisioning must go to
    the queue of the database it will live on, so each server's workers bound its DDL."""
    import redis

    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = "tenancy-place-{database}"
    Customer.objects.create(name="first", database="default")  # queued, stays pending
    Customer._base_manager.bulk_create([Customer(name="bulk_unplaced")])
    client = redis.Redis.from_url(broker.url)
    try:
        client.delete("tenancy-place-default", "tenancy-place-other")
        lifecycle.reconcile(grace=0)
        placed = Customer.objects.get(name="bulk_unplaced")
        assert placed.database == "other" and placed.db_schema == "tenant_bulk_unplaced"
        assert client.llen("tenancy-place-other") == 1  # the bulk-created tenant's task
        assert client.llen("tenancy-place-default") == 1  # "first", sent again
    finally:
        client.delete("tenancy-place-default", "tenancy-place-other")
        client.close()


def test_a_rollout_migrates_tenants_on_every_database(two_databases):
    tenants = [place("roll_a", database="default"), place("roll_b", database="other")]
    Customer.objects.update(migrations_digest="old")
    report = rollout.run_inline()
    assert {o.schema for o in report.succeeded} == {t.db_schema for t in tenants}
    assert set(Customer.objects.values_list("migrations_digest", flat=True)) == {
        migration_plan().digest
    }
    assert report.by_database() == {
        "default": {"migrated": 1, "failed": 0},
        "other": {"migrated": 1, "failed": 0},
    }


def test_status_shows_tenants_per_database(two_databases, capsys):
    place("one", database="default"), place("two", database="other")
    call_command("tenancy_status")
    assert "default: 1, other: 1" in capsys.readouterr().out


@not_on_citus_moves
def test_a_tenant_moves_with_its_rows_and_stays_readable(two_databases):
    tenant = place("mover", database="default")
    Project.for_tenant(tenant).objects.bulk_create(
        [Project.for_tenant(tenant)(name=f"p{i}") for i in range(5)]
    )
    call_command("tenancy_move", "mover", "other")
    tenant.refresh_from_db()
    assert tenant.database == "other"
    assert not storage.schema_exists("tenant_mover", "default")
    model = Project.for_tenant(tenant)
    assert model.objects.count() == 5
    assert model.objects.create(name="after").pk == 6  # sequences carried over


@not_on_citus_moves
def test_writes_are_refused_and_reads_work_while_a_tenant_moves(two_databases):
    tenant = place("frozen", database="default")
    Project.for_tenant(tenant).objects.create(name="kept")
    move.freeze(tenant.db_schema, "default", owner_of(tenant))
    try:
        assert Project.for_tenant(tenant).objects.get().name == "kept"
        with pytest.raises(DatabaseError, match="read-only while it moves"), transaction.atomic():
            Project.for_tenant(tenant).objects.create(name="refused")
    finally:
        move.thaw(tenant.db_schema, "default", owner_of(tenant))
    Project.for_tenant(tenant).objects.create(name="writable again")


@not_on_citus_moves
def test_a_move_that_fails_half_way_leaves_the_tenant_where_it_was(two_databases, monkeypatch):
    tenant = place("stuck", database="default")
    Project.for_tenant(tenant).objects.create(name="safe")

    def lose_rows(out, into, name):
        raise MoveError(f"{name}: 0 rows copied of 1; the move is undone.")

    monkeypatch.setattr(move, "_verify", lose_rows)
    with pytest.raises(MoveError, match="undone"):
        move.move_tenant(tenant, "other")
    tenant.refresh_from_db()
    assert tenant.database == "default"
    assert not storage.schema_exists(tenant.db_schema, "other")
    model = Project.for_tenant(tenant)
    model.objects.create(name="still writable")
    assert model.objects.count() == 2


def test_the_warm_pool_works_per_database(two_databases, settings):
    from tenancy._orchestration import pool

    settings.TENANCY_POOL_SIZE = 1
    try:
        assert pool.refill("other") == 1
        [pooled] = PoolSchema.objects.filter(database="other")
        tenant = place("pooled_other", database="other")
        assert tenant.state == TenantState.READY
        assert storage.schema_exists("tenant_pooled_other", "other")
        assert not storage.schema_exists(pooled.name, "other")  # renamed: the pool was used
        assert Project.for_tenant(tenant).objects.create(name="p").pk
    finally:
        pool.drain("other")
        pool.drain("default")


def _emptied(tenant: Customer) -> None:
    """Leave the tenant's schema empty and unmigrated, as before its first migration."""
    drop_storage(tenant)
    with transaction.atomic(using=tenant.database):
        provisioning.create_schema(tenant.db_schema, tenant.database, owner_of(tenant))


def _foreign_keys_to_auth_user(tenant: Customer) -> int:
    with connections[tenant.database].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass "
            "AND confrelid = 'auth_user'::regclass",
            [f'"{tenant.db_schema}"."testapp_project"'],
        )
        return int(cursor.fetchone()[0])


def test_sql_recorded_on_one_database_is_never_replayed_on_another(two_databases):
    """Migration SQL recorded on a tenant of another database has no foreign keys to
    shared tables (they are not there); replayed on a tenant of the shared database it
    would leave its foreign keys out, and ON DELETE SET NULL would never happen."""
    remote = place("replay_remote", database="other")
    local = place("replay_local", database="default")
    _emptied(remote), _emptied(local)
    migration_plan().compiled.clear()
    assert executor.migrate_schema(remote.db_schema, "other")
    assert executor.migrate_schema(local.db_schema, "default")
    assert _foreign_keys_to_auth_user(remote) == 0
    assert _foreign_keys_to_auth_user(local) >= 2  # owner (SET NULL) and sponsor (CASCADE)
    user = User.objects.create(username="leaver")
    project = Project.for_tenant(local).objects.create(name="p", owner=user)
    user.delete()
    project.refresh_from_db()
    assert project.owner_id is None


def test_a_transient_failure_in_a_batch_is_sent_again_to_its_databases_queue(
    two_databases, settings, monkeypatch
):
    tenant = place("flaky_remote", database="other")
    Customer.objects.filter(pk=tenant.pk).update(migrations_digest="0" * 32)
    settings.TENANCY_CELERY_QUEUE = "tenancy-{database}"
    sent = []

    def publish(task, args, *, database=None):
        sent.append((task.name, args, dispatch.queue_for(database)))
        return True

    def unreachable(schema, using, **kwargs):
        raise OperationalError("the server closed the connection")

    monkeypatch.setattr(dispatch, "publish", publish)
    monkeypatch.setattr(executor, "migrate_schema", unreachable)
    results = migrate.migrate_tenants([tenant.pk])
    assert results == {tenant.pk: "retry"}
    assert sent == [("tenancy.migrate_tenant", (tenant.pk,), "tenancy-other")]

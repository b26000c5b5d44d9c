"""Citus: tenants as distributed schemas on a real cluster (``make test-citus``).

The tests marked ``citus`` run only against a Citus coordinator with schema-based
sharding (``TENANCY_TEST_CITUS``, prepared by tests/citus_cluster.py); the others
hold on any PostgreSQL and check what must not change there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.db import close_old_connections, connection, connections

from benchmarks.services import pg_connect, wait_for
from tenancy import clear_cache
from tenancy._classes.shared_references import missing_reference_tables, referenced_shared_models
from tenancy._migrating import replay
from tenancy._orchestration import pool
from tenancy._orchestration.move import move_tenant
from tenancy._orchestration.node_move import move_to_node
from tenancy._primitives import citus, shared
from tenancy._primitives.markers import is_template, is_tenant_model
from tenancy.checks import check_citus
from tenancy.exceptions import MoveError
from tenancy.models import PoolSchema, TenantState
from tests import citus_cluster
from tests.testapp.models import Customer, Project
from tests.workers import ROOT

pytestmark = pytest.mark.postgresql

on_citus = pytest.mark.skipif(
    not citus_cluster.active(),
    reason="needs a Citus cluster: make test-citus with TENANCY_TEST_CITUS=host:port",
)

STATEMENTS = [("CREATE TABLE a (id int)", None), ("CREATE INDEX a_id ON a (id)", None)]


def _kinds(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT citus_table_type FROM citus_tables WHERE table_name::text LIKE %s",
            [f"{schema}.%"],
        )
        return {row[0] for row in cursor.fetchall()}


def _node(schema: str) -> tuple[str, int]:
    where = citus.placements([schema], "default")[schema]
    return where.node, where.port


@pytest.mark.django_db
def test_citus_is_detected_from_the_extension():
    assert citus.is_citus("default") is citus_cluster.active()


@pytest.mark.django_db
def test_recorded_ddl_is_one_batch_on_postgresql_and_one_statement_per_query_on_citus():
    batch = replay.batched(connection, STATEMENTS)
    if citus_cluster.active():
        assert batch == STATEMENTS
    else:
        assert batch == [("CREATE TABLE a (id int);\nCREATE INDEX a_id ON a (id)", None)]


@pytest.mark.django_db
def test_the_setting_overrides_detection(settings):
    settings.TENANCY_CITUS = True
    assert citus.is_citus("default")
    settings.TENANCY_CITUS = ["other"]
    assert not citus.is_citus("default") and citus.is_citus("other")


@pytest.mark.django_db
def test_shared_models_that_tenant_models_reference_are_listed_referenced_first():
    from django.contrib.auth.models import User

    models = referenced_shared_models()
    assert User in models
    assert not any(is_template(m) or is_tenant_model(m) for m in models)


@on_citus
def test_signups_build_distributed_schemas_whose_tables_are_single_shard_tables(make_tenant):
    """The first tenant records its DDL and the next ones replay it, one statement per
    query: every tenant's tables are Citus schema tables on a worker node (a DDL batch,
    or one sent from PL/pgSQL, would fail or leave local tables on the coordinator)."""
    tenants = [make_tenant(f"citus{i}") for i in range(3)]
    workers = set(citus.worker_nodes("default"))
    for tenant in tenants:
        assert tenant.state == TenantState.READY
        assert tenant.db_schema in citus.distributed_schemas("default")
        assert _kinds(tenant.db_schema) == {"schema"}
        assert _node(tenant.db_schema) in workers
        Project.for_tenant(tenant).objects.create(name=f"of {tenant.name}")
    for tenant in tenants:
        assert list(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == [
            f"of {tenant.name}"
        ]


@on_citus
def test_a_delete_drops_the_distributed_schema_and_its_shards(make_tenant):
    tenant = make_tenant("citus_gone")
    schema = tenant.db_schema
    assert citus.placements([schema], "default")
    tenant.delete()
    assert schema not in citus.distributed_schemas("default")
    assert citus.placements([schema], "default") == {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE %s",
            [f"{schema}.%"],
        )
        assert cursor.fetchone()[0] == 0


@on_citus
@pytest.mark.django_db(transaction=True)
def test_an_online_move_between_nodes_keeps_every_write_made_meanwhile(make_tenant):
    """``citus_schema_move()`` under load: a thread writes while the schema moves to the
    other worker; no write fails, every row is there afterwards, the tenant's database
    field is unchanged and the placement names the new node."""
    tenant = make_tenant("citus_mover")
    Project.for_tenant(tenant).objects.create(name="before")
    source = _node(tenant.db_schema)
    (target,) = [node for node in citus.worker_nodes("default") if node != source]
    written: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        try:
            model = Project.for_tenant(Customer.objects.get(pk=tenant.pk))
            while not stop.is_set():
                written.append(model.objects.create(name=f"row {len(written)}").pk)
                # A steady load (a few hundred writes a second), not a flood: under a
                # flood, logical replication never catches up and the move never ends.
                time.sleep(0.002)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20 and writer.is_alive():
            time.sleep(0.01)
        report = move_to_node(tenant, f"{target[0]}:{target[1]}")
        during = len(written)
        deadline = time.monotonic() + 5
        while len(written) < during + 20 and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join(30)
    close_old_connections()
    assert errors == []
    assert (
        report.source == f"{source[0]}:{source[1]}" and report.target == f"{target[0]}:{target[1]}"
    )
    assert _node(tenant.db_schema) == target
    assert len(written) > during  # writes went on after the move
    tenant.refresh_from_db()
    assert tenant.database == "default" and tenant.state == TenantState.READY
    clear_cache()
    rows = dict(Project.for_tenant(tenant).objects.values_list("pk", "name"))
    missing = sorted(set(written) - set(rows))
    print(
        "written",
        len(written),
        "rows",
        len(rows),
        "missing",
        len(missing),
        missing[:3],
        missing[-3:],
        "during",
        during,
    )
    print(sorted(rows)[-5:], [rows[k] for k in sorted(rows)[-5:]])
    assert missing == [] and len(rows) == len(written) + 1


@on_citus
def test_a_move_to_the_node_it_is_on_or_to_an_unknown_node_is_refused(make_tenant):
    tenant = make_tenant("citus_stays")
    host, port = _node(tenant.db_schema)
    with pytest.raises(MoveError, match="already on"):
        move_to_node(tenant, f"{host}:{port}")
    with pytest.raises(MoveError, match="not an active worker node"):
        move_to_node(tenant, "127.0.0.1:1")
    with pytest.raises(MoveError, match="HOST:PORT"):
        move_to_node(tenant, "nowhere")
    assert _node(tenant.db_schema) == (host, port)


def _set_workers_synchronous_commit(value: str) -> None:
    """Set it for the test database on every node (Citus propagates ALTER DATABASE)."""
    name = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO {value}')
    connection.close()  # the next session's connections to the workers take the setting


@on_citus
@pytest.mark.django_db(transaction=True)
def test_an_online_move_is_refused_where_commits_are_asynchronous_and_blocking_writes_works(
    make_tenant,
):
    """With synchronous_commit = off on the nodes, Citus 13.2's online move lost rows
    committed during its switch-over: it is refused, naming the nodes and both fixes,
    and --block-writes moves the tenant with every row."""
    tenant = make_tenant("citus_async")
    Project.for_tenant(tenant).objects.bulk_create(
        Project.for_tenant(tenant)(name=f"p{i}") for i in range(50)
    )
    source = _node(tenant.db_schema)
    (target,) = [node for node in citus.worker_nodes("default") if node != source]
    _set_workers_synchronous_commit("off")
    try:
        with pytest.raises(MoveError, match="synchronous_commit is off on .*--block-writes"):
            move_to_node(tenant, f"{target[0]}:{target[1]}")
        assert _node(tenant.db_schema) == source
        report = move_to_node(tenant, f"{target[0]}:{target[1]}", block_writes=True)
    finally:
        _set_workers_synchronous_commit("on")
    assert not report.online and _node(tenant.db_schema) == target
    assert Project.for_tenant(tenant).objects.count() == 50


@on_citus
def test_tenancy_move_node_moves_a_tenant_and_says_where(make_tenant, capsys):
    tenant = make_tenant("citus_cmd")
    source = _node(tenant.db_schema)
    (target,) = [node for node in citus.worker_nodes("default") if node != source]
    call_command("tenancy_move", tenant.name, "--node", f"{target[0]}:{target[1]}")
    out = capsys.readouterr().out
    assert f"from node {source[0]}:{source[1]} to {target[0]}:{target[1]}" in out
    assert "online" in out and _node(tenant.db_schema) == target


@on_citus
@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_a_move_between_databases_is_refused_with_the_way_to_move_on_citus(
    make_tenant, two_databases
):
    tenant = make_tenant("citus_across", database="default")
    with pytest.raises(MoveError, match="tenancy_move KEY --node"):
        move_tenant(tenant, "other")
    tenant.refresh_from_db()
    assert tenant.database == "default"
    Project.for_tenant(tenant).objects.create(name="still writable")


@pytest.mark.django_db(transaction=True)
def test_node_moves_are_refused_off_citus(make_tenant):
    if citus_cluster.active():
        pytest.skip("checks plain PostgreSQL: this database is Citus")
    tenant = make_tenant("not_citus")
    with pytest.raises(MoveError, match="not a Citus coordinator"):
        move_to_node(tenant, "127.0.0.1:9701")


@on_citus
def test_tenancy_status_reports_each_tenants_node_and_size(make_tenant, capsys):
    import json

    tenant = make_tenant("citus_placed")
    call_command("tenancy_status", "--json")
    document = json.loads(capsys.readouterr().out)
    (row,) = [r for r in document["tenants"] if r["schema"] == tenant.db_schema]
    host, port = _node(tenant.db_schema)
    assert row["placement"]["node"] == f"{host}:{port}" and row["placement"]["size"] > 0
    call_command("tenancy_status")
    table = capsys.readouterr().out
    assert "NODE" in table and f"{host}:{port}" in table


@on_citus
def test_the_warm_pool_renames_a_distributed_schema_to_the_tenants(make_tenant, settings):
    settings.TENANCY_POOL_SIZE = 1
    assert pool.refill("default") == 1
    (pooled,) = PoolSchema.objects.values_list("name", flat=True)
    assert pooled in citus.distributed_schemas("default")
    node = _node(pooled)
    try:
        tenant = make_tenant("citus_pooled")
        assert tenant.state == TenantState.READY
        schemas = citus.distributed_schemas("default")
        assert tenant.db_schema in schemas and pooled not in schemas
        assert _node(tenant.db_schema) == node  # renamed where it stood, not rebuilt
        Project.for_tenant(tenant).objects.create(name="in a renamed schema")
        assert Project.for_tenant(tenant).objects.count() == 1
    finally:
        pool.drain("default")


@on_citus
@pytest.mark.django_db(databases=["default", "other"])
def test_the_check_names_each_missing_reference_table_and_the_command_makes_it(
    settings, capsys, monkeypatch
):
    """On "other" (tests/citus_cluster.py migrates it, and makes no reference tables)
    auth_user is a local table: the check, told "other" is the shared database,
    reports it with the SQL and the command, the command converts it, and the check
    is silent after."""
    settings.TENANCY_DATABASES = ["default", "other"]
    monkeypatch.setattr(shared, "database", lambda: "other")
    if "auth_user" not in missing_reference_tables("other"):
        call_command("tenancy_reference_tables", "--database", "other", "--sql")
        pytest.skip("auth_user on 'other' is a reference table already (an earlier run)")
    (error,) = [e for e in check_citus(databases=["other"]) if e.id == "tenancy.E015"]
    assert isinstance(error, Error) and "'auth_user'" in error.msg
    assert "tenancy_reference_tables --database other" in error.hint
    assert "SELECT create_reference_table('\"auth_user\"');" in error.hint
    call_command("tenancy_reference_tables", "--database", "other", "--sql")
    assert capsys.readouterr().out.strip() == "SELECT create_reference_table('\"auth_user\"');"
    assert "auth_user" in missing_reference_tables("other")  # --sql changes nothing
    call_command("tenancy_reference_tables", "--database", "other")
    assert "auth_user: now a reference table" in capsys.readouterr().out
    assert missing_reference_tables("other") == []
    assert [e for e in check_citus(databases=["other"]) if e.id == "tenancy.E015"] == []


@on_citus
@pytest.mark.django_db
def test_per_tenant_roles_are_refused_on_citus_with_the_reason(settings):
    settings.TENANCY_SCHEMA_AUTHORIZATION = True
    (error,) = [e for e in check_citus(databases=["default"]) if e.id == "tenancy.E016"]
    assert "NOLOGIN" in error.msg and "TENANCY_SCHEMA_AUTHORIZATION = False" in error.hint
    settings.TENANCY_SCHEMA_AUTHORIZATION = False
    assert [e for e in check_citus(databases=["default"]) if e.id == "tenancy.E016"] == []


@pytest.mark.django_db
def test_the_citus_checks_are_silent_on_plain_postgresql(settings):
    if citus_cluster.active():
        pytest.skip("checks plain PostgreSQL: this database is Citus")
    settings.TENANCY_SCHEMA_AUTHORIZATION = True
    assert check_citus(databases=["default", "other"]) == []
    assert check_citus(databases=None) == []


def _moves_running() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT citus_schema_move(%%' "
            "AND pid <> pg_backend_pid()"
        )
        return bool(cursor.fetchone()[0])


@on_citus
@pytest.mark.django_db(transaction=True)
def test_a_node_move_killed_mid_way_leaves_the_tenant_whole_and_movable_again(make_tenant):
    """``kill -9`` of ``tenancy_move --node`` while citus_schema_move() runs: whatever
    Citus made of it, the tenant is on one node with every row, Citus's cleanup leaves
    no copy behind, the tenant's lock is free, and the next move works."""
    tenant = make_tenant("citus_killed")
    model = Project.for_tenant(tenant)
    model.objects.bulk_create(model(name=f"p{i}") for i in range(20_000))
    source = _node(tenant.db_schema)
    (target,) = [node for node in citus.worker_nodes("default") if node != source]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "PGDATABASE": connection.settings_dict["NAME"],
    }
    # An open transaction that wrote to the tenant: the move copies, then waits for it
    # to switch over, so it is surely mid-way when it is killed.
    blocker = pg_connect(connection.settings_dict["NAME"])
    with blocker.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{tenant.db_schema}"."testapp_project" (name) VALUES (%s)', ["held"]
        )
    node = f"{target[0]}:{target[1]}"
    mover = subprocess.Popen(
        [sys.executable, "-m", "django", "tenancy_move", tenant.name, "--node", node],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _moves_running() or mover.poll() is not None, 60, "the move to start")
        time.sleep(0.5)
        assert mover.poll() is None, "tenancy_move ended before it was killed"
    finally:
        mover.send_signal(signal.SIGKILL)
        mover.wait(30)
        blocker.rollback()
        blocker.close()
    wait_for(lambda: not _moves_running(), 120, "the killed move's backend to end")
    with connection.cursor() as cursor:
        cursor.execute("CALL citus_cleanup_orphaned_resources()")
        cursor.execute(
            "SELECT count(DISTINCT nodeport), count(*) FROM citus_shards "
            "WHERE table_name::text LIKE %s",
            [f"{tenant.db_schema}.%"],
        )
        nodes, shards = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM pg_dist_cleanup")
        leftovers = cursor.fetchone()[0]
    assert nodes == 1 and shards == len(_tables(tenant.db_schema))
    assert leftovers == 0
    assert _node(tenant.db_schema) in (source, target)
    assert model.objects.count() == 20_000
    now = _node(tenant.db_schema)
    (other,) = [node for node in citus.worker_nodes("default") if node != now]
    move_to_node(tenant, f"{other[0]}:{other[1]}")  # the lock is free, the move works
    assert _node(tenant.db_schema) == other and model.objects.count() == 20_000


def _tables(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
            [schema],
        )
        return [row[0] for row in cursor.fetchall()]

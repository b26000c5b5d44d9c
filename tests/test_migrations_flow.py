"""Tenant migrations end to end, with Django's own commands run as a user would.

A small project (tests/migrations_project) changes its tenant models in
stages; each step runs ``makemigrations``, ``migrate``, ``createtenant`` and
``tenancy_migrate`` in a subprocess, on PostgreSQL through a real worker and
on SQLite in eager mode.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.services import pg_connect
from tests import citus_cluster
from tests.settings import BACKEND
from tests.workers import ROOT, Worker

DATA_MIGRATION = """
from django.db import migrations


def forwards(apps, schema_editor):
    Note = apps.get_model("shop", "Note")
    Label = apps.get_model("shop", "Label")
    Note.objects.update(priority=7)
    Label.objects.create(text="migrated")


class Migration(migrations.Migration):
    dependencies = [("shop", "{previous}")]
    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop, hints={{"tenant": True}}),
        {extra}
    ]
"""

# RunSQL names tables as they are in the tenant's schema: PostgreSQL only.
RUN_SQL = (
    'migrations.RunSQL("INSERT INTO shop_label (text) VALUES (\'sql\')", hints={"tenant": True}),'
)


class Shop:
    """The staged project: its database, migrations package and commands."""

    def __init__(self, backend: str, workdir: Path, broker_url: str | None) -> None:
        self.backend = backend
        self.workdir = workdir
        self.package = f"shop_migrations_{os.getpid()}_{backend}"
        (workdir / self.package).mkdir()
        (workdir / self.package / "__init__.py").write_text("")
        self.stage = 1
        self.db_name = f"tenancy_shop_{os.getpid()}"
        self.sqlite_path = str(workdir / "shop.sqlite3")
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{workdir}",
            "DJANGO_SETTINGS_MODULE": "tests.migrations_project.settings",
            "SHOP_MIGRATIONS_MODULE": self.package,
            "SHOP_DATABASE": backend,
            "SHOP_PG_NAME": self.db_name,
            "SHOP_SQLITE_PATH": self.sqlite_path,
            "TENANCY_EAGER": "1" if broker_url is None else "0",
            "TENANCY_CELERY_QUEUE": f"shop-{os.getpid()}",
        }
        if broker_url is not None:
            self.env["CELERY_BROKER_URL"] = broker_url
        self.worker: Worker | None = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "SHOP_STAGE": str(self.stage)}
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def migrations(self) -> list[str]:
        return sorted(p.stem for p in (self.workdir / self.package).glob("0*.py"))

    def start_worker(self) -> None:
        """(Re)start the worker with the current stage's code, as a deploy would."""
        if self.worker is not None:
            self.worker.stop()
        self.worker = Worker(
            self.env["CELERY_BROKER_URL"],
            self.env["TENANCY_CELERY_QUEUE"],
            concurrency=2,
            app="tests.migrations_project.celery_app",
            DJANGO_SETTINGS_MODULE="tests.migrations_project.settings",
            SHOP_STAGE=str(self.stage),
            **{k: v for k, v in self.env.items() if k.startswith("SHOP_")},
            PYTHONPATH=self.env["PYTHONPATH"],
        ).start()

    # -- looking inside the database --

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.sqlite_path) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        conn = pg_connect(self.db_name)
        try:
            with conn, conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.close()

    def table(self, schema: str, name: str) -> str:
        if self.backend == "sqlite":
            return f'"{schema}__{name}"'
        return f'"{schema}"."{name}"'

    def columns(self, schema: str, table: str) -> set[str]:
        if self.backend == "sqlite":
            rows = self.query(f"PRAGMA table_info({self.table(schema, table)})")
            return {row[1] for row in rows}
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return {row[0] for row in rows}

    def shared_tables(self) -> set[str]:
        if self.backend == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {r[0] for r in rows if "__" not in r[0]}
        rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}

    def has_constraint(self, schema: str, name: str) -> bool:
        if self.backend == "sqlite":
            rows = self.query(
                "SELECT sql FROM sqlite_master WHERE tbl_name = %s", (f"{schema}__shop_note",)
            )
            return any(name in (row[0] or "") for row in rows)
        rows = self.query(
            "SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = %s AND c.conname = %s",
            (schema, name),
        )
        return bool(rows)


@pytest.fixture
def shop_postgresql(broker, django_db_setup) -> Iterator[Shop]:
    """The shop's own database; on the Citus leg a Citus database on every node."""
    admin = pg_connect("postgres")
    admin.autocommit = True
    with tempfile.TemporaryDirectory() as workdir:
        shop = Shop("postgresql", Path(workdir), broker.url)
        if citus_cluster.active():
            citus_cluster.prepare_database(shop.db_name)
        else:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{shop.db_name}"')
                cursor.execute(f'CREATE DATABASE "{shop.db_name}"')
        try:
            yield shop
        finally:
            if shop.worker is not None:
                shop.worker.stop()
            if citus_cluster.active():
                citus_cluster.drop_database(shop.db_name)
            else:
                with admin.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{shop.db_name}" WITH (FORCE)')
            admin.close()


@pytest.fixture
def shop_sqlite() -> Iterator[Shop]:
    with tempfile.TemporaryDirectory() as workdir:
        yield Shop("sqlite", Path(workdir), None)


def _migration_flow(shop: Shop) -> None:
    """Add a field and a model, a data migration, then a constraint one tenant violates."""
    # Stage 1: the initial models, migrated, and three tenants with data.
    shop.run("makemigrations", "shop")
    shop.run("migrate")
    if shop.backend == "postgresql":
        shop.start_worker()
    for name in ("alpha", "beta", "gamma"):
        shop.run("createtenant", f"name={name}", "--wait", "60")
    for schema in ("tenant_alpha", "tenant_beta", "tenant_gamma"):
        shop.query(f"INSERT INTO {shop.table(schema, 'shop_note')} (title) VALUES ('first')")
    if shop.backend == "postgresql" and citus_cluster.active():
        # Each tenant is a distributed schema, its tables single-shard tables on a node.
        kinds = shop.query(
            "SELECT DISTINCT citus_table_type FROM citus_tables "
            "WHERE table_name::text LIKE 'tenant%%'"
        )
        assert kinds == [("schema",)]
        distributed = shop.query("SELECT schema_name::text FROM citus_schemas ORDER BY 1")
        assert distributed == [("tenant_alpha",), ("tenant_beta",), ("tenant_gamma",)]
    # gamma's data will violate stage 3's unique constraint.
    shop.query(f"INSERT INTO {shop.table('tenant_gamma', 'shop_note')} (title) VALUES ('first')")
    assert "shop_note" not in shop.shared_tables()

    # Stage 2: a new field, a new model, and a data migration.
    shop.stage = 2
    out = shop.run("makemigrations", "shop").stdout
    assert "Add field priority to note" in out and "Create model Label" in out
    previous = shop.migrations()[-1]
    (shop.workdir / shop.package / "0003_mark_notes.py").write_text(
        textwrap.dedent(
            DATA_MIGRATION.format(
                previous=previous, extra=RUN_SQL if shop.backend == "postgresql" else ""
            )
        )
    )
    shop.run("migrate")
    assert "shop_label" not in shop.shared_tables()
    if shop.worker is not None:
        shop.start_worker()  # the deploy restarts the workers with the new code
    result = shop.run("tenancy_migrate", "--concurrency", "2")
    assert "3 tenant(s) migrated, 0 failed" in result.stdout
    for schema in ("tenant_alpha", "tenant_beta", "tenant_gamma"):
        assert "priority" in shop.columns(schema, "shop_note")
        assert {"id", "note_id", "text"} <= shop.columns(schema, "shop_label")
        titles = shop.query(f"SELECT title, priority FROM {shop.table(schema, 'shop_note')}")
        assert {row[0] for row in titles} == {"first"}  # the data survived
        assert {row[1] for row in titles} == {7}
        labels = shop.query(f"SELECT text FROM {shop.table(schema, 'shop_label')} ORDER BY id")
        # RunPython (and RunSQL) ran once in each tenant, and never in the shared schema.
        expected = [("migrated",), ("sql",)] if shop.backend == "postgresql" else [("migrated",)]
        assert labels == expected
    assert "shop_note" not in shop.shared_tables() and "shop_label" not in shop.shared_tables()

    # A tenant created now is built from the current state, not from history.
    shop.run("createtenant", "name=delta", "--wait", "60")
    assert "priority" in shop.columns("tenant_delta", "shop_note")
    assert shop.query(f"SELECT text FROM {shop.table('tenant_delta', 'shop_label')}") == []
    recorded = shop.query(f"SELECT name FROM {shop.table('tenant_delta', 'tenancy_migrations')}")
    assert sorted(r[0] for r in recorded) == shop.migrations()
    again = shop.run("tenancy_migrate")
    assert "0 tenant(s) migrated, 0 failed" in again.stdout  # a no-op re-run

    # Stage 3: a unique constraint that gamma's data violates.
    shop.stage = 3
    shop.run("makemigrations", "shop")
    shop.run("migrate")
    if shop.worker is not None:
        shop.start_worker()
    failed = shop.run("tenancy_migrate", check=False)
    assert failed.returncode != 0
    assert "gamma (tenant_gamma)" in failed.stderr and "IntegrityError" in failed.stderr
    assert "3 tenant(s) migrated, 1 failed" in failed.stdout
    for schema in ("tenant_alpha", "tenant_beta", "tenant_delta"):
        assert shop.has_constraint(schema, "note_title_unique")
    assert not shop.has_constraint("tenant_gamma", "note_title_unique")
    status = shop.run("tenancy_status").stdout
    assert "failed" in status and "gamma" in status

    # Fix gamma's data; the re-run completes it and skips the others.
    shop.query(
        f"DELETE FROM {shop.table('tenant_gamma', 'shop_note')} WHERE id = "
        f"(SELECT max(id) FROM {shop.table('tenant_gamma', 'shop_note')})"
    )
    fixed = shop.run("tenancy_migrate")
    assert "1 tenant(s) migrated, 0 failed" in fixed.stdout
    assert shop.has_constraint("tenant_gamma", "note_title_unique")


@pytest.mark.postgresql
def test_tenant_migrations_on_postgresql_through_a_worker(shop_postgresql):
    _migration_flow(shop_postgresql)


@pytest.mark.skipif(BACKEND != "sqlite", reason="runs in the SQLite leg of the suite")
def test_tenant_migrations_on_sqlite_in_eager_mode(shop_sqlite):
    _migration_flow(shop_sqlite)


# -- mixins: any base order Django allows, with a multi-table child --

_USE_MIXINS = """
from tenancy import get_tenant_model
from tests.migrations_project.shop.models import GoldBadge, Holo

acme = get_tenant_model().objects.get(name="acme")
gold = GoldBadge.for_tenant(acme).objects.create(title="gold", stamp="x", shine=3, carats=24)
holo = Holo.for_tenant(acme).objects.create(label="holo", stamp="y", shine=2)
gold = GoldBadge.for_tenant(acme).objects.get(pk=gold.pk)
holo = Holo.for_tenant(acme).objects.get()
print(gold.carats, gold.stamped(), gold.shine_twice(), holo.shine_twice())
"""


def _mixin_flow(shop: Shop) -> None:
    """Templates that mix in an abstract model and a plain class, in either order, each
    with a multi-table child: makemigrations writes bases that render (so migrate and
    provisioning work), and the tenant classes keep the mixins' methods."""
    shop.env["SHOP_MIXINS"] = "1"
    shop.run("makemigrations", "shop")
    shop.run("migrate")
    if shop.backend == "postgresql":
        shop.start_worker()
    shop.run("createtenant", "name=acme", "--wait", "60")
    output = shop.run("shell", "-c", _USE_MIXINS).stdout.strip().splitlines()
    assert output[-1].split() == ["24", "x!", "6", "4"]
    assert "No changes detected" in shop.run("makemigrations", "shop", "--check").stdout


@pytest.mark.postgresql
def test_templates_with_mixins_and_children_migrate_on_postgresql(shop_postgresql):
    _mixin_flow(shop_postgresql)


@pytest.mark.skipif(BACKEND != "sqlite", reason="runs in the SQLite leg of the suite")
def test_templates_with_mixins_and_children_migrate_on_sqlite(shop_sqlite):
    _mixin_flow(shop_sqlite)

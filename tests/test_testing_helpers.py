"""tenancy.testing: a ready tenant for a project's own tests, on a schema built once and kept."""

# The fixtures are imported from tenancy.testing, as a conftest.py may, and requested by name.
# ruff: noqa: F811

import os
import subprocess
import sys
import textwrap
import unittest
from pathlib import Path

import pytest
from django.core.management.color import no_style
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings

from tenancy import testing
from tenancy._migrating import recorder
from tenancy._migrating.plan import plan as migration_plan
from tenancy._orchestration import building
from tenancy._primitives import conf, storage
from tenancy.exceptions import TenancyError
from tenancy.models import TenantState
from tenancy.testing import (  # noqa: F401 - fixtures used by import, as a conftest.py may
    KeptSchema,
    TenantTestMixin,
    tenancy_eager,
    tenancy_schema,
    tenancy_tenant,
    tenancy_tenant_fields,
)
from tests.settings import BACKEND
from tests.support import drop_storage
from tests.testapp.models import Customer, Project, Report

REPO = Path(__file__).resolve().parent.parent


def on_postgresql() -> bool:
    return storage.uses_schemas(connection)


@pytest.fixture(scope="module", autouse=True)
def _drop_kept_schemas_after_the_module(django_db_setup, django_db_blocker):
    """Leave no kept schema behind for the rest of the suite.

    pytest-django runs rolled-back tests first and transactional ones next, so
    this module may be left and resumed; the next use builds the schema again.
    """
    yield
    with django_db_blocker.unblock():
        testing.release_schemas()


@pytest.fixture
def provision_calls(monkeypatch):
    """Record every schema that the library builds from now on."""
    calls = []
    original = building.build

    def spy(schema, using, owner, **kwargs):
        calls.append(schema)
        return original(schema, using, owner, **kwargs)

    monkeypatch.setattr(building, "build", spy)
    return calls


def run_tests(case_class):
    """Run a unittest class the way Django's test runner would; return its result."""
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case_class)
    result = unittest.TestResult()
    suite.run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun > 0
    return result


def identity(schema: str):
    """Return what changes if a schema is dropped and built again (PostgreSQL's oid)."""
    return storage.schema_oid(schema, conf.default_database())


# -- the mixin, run programmatically: two tests in order, one schema --


def observed_by(base):
    """Return a TenantTestMixin class on ``base`` whose two tests record what they see."""
    seen = []

    class ProjectTests(TenantTestMixin, base):
        def record(self):
            TenantProject = Project.for_tenant(self.tenant)
            seen.append(
                {
                    "ready": self.tenant.state == TenantState.READY,
                    "row": Customer.objects.filter(pk=self.tenant.pk).exists(),
                    "schema": self.tenant.db_schema,
                    "oid": identity(self.tenant.db_schema),
                    "projects": TenantProject.objects.count(),
                    "eager": conf.eager(),
                }
            )
            TenantProject.objects.create(name="written by a test")

        def test_1(self):
            self.record()

        def test_2(self):
            self.record()

    return ProjectTests, seen


@pytest.mark.parametrize("base", [TestCase, TransactionTestCase])
def test_mixin_builds_the_schema_once_and_empties_it_between_tests(
    base, transactional_db, provision_calls
):
    case_class, seen = observed_by(base)
    testing.release_schemas()  # start from nothing, to count the builds
    run_tests(case_class)
    assert not Customer.objects.exists()  # rolled back (TestCase) or flushed
    assert provision_calls == ["tenant_test"]  # one build for both tests
    first, second = seen
    assert first["ready"] and second["ready"] and first["row"] and second["row"]
    assert first["schema"] == second["schema"] == "tenant_test"
    assert first["oid"] == second["oid"]  # not rebuilt (None on SQLite: no oids)
    assert first["projects"] == second["projects"] == 0  # the first test's row is gone
    assert first["eager"] and second["eager"]


def test_mixin_takes_the_tenant_fields_from_the_class_or_the_setting(transactional_db):
    class Named(TenantTestMixin, TestCase):
        tenant_fields = {"name": "mixin"}

        def test_schema(self):
            assert self.tenant.db_schema == "tenant_mixin"

    @override_settings(TENANCY_TEST_TENANT={"name": "fromsettings"})
    class FromSettings(TenantTestMixin, TestCase):
        def test_schema(self):
            assert self.tenant.db_schema == "tenant_fromsettings"
            assert self.tenant.name == "fromsettings"

    run_tests(Named)
    run_tests(FromSettings)


def test_mixin_gives_set_up_test_data_the_tenant(transactional_db):
    class WithData(TenantTestMixin, TestCase):
        @classmethod
        def setUpTestData(cls):
            super().setUpTestData()
            cls.project = Project.for_tenant(cls.tenant).objects.create(name="shared")

        def test_1_changes_the_data(self):
            Project.for_tenant(self.tenant).objects.all().delete()

        def test_2_sees_the_class_data_again(self):
            assert Project.for_tenant(self.tenant).objects.get().name == "shared"
            assert self.project.name == "shared"

    run_tests(WithData)


def test_mixin_rebuilds_the_schema_when_a_transactional_test_deleted_the_tenant(
    transactional_db, provision_calls
):
    class Deleting(TenantTestMixin, TransactionTestCase):
        def test_1_deletes(self):
            self.tenant.delete()  # eager: drops the schema
            assert not storage.schema_exists("tenant_test", "default")

        def test_2_has_a_tenant_again(self):
            assert Project.for_tenant(self.tenant).objects.count() == 0

    testing.kept_schema()
    provision_calls.clear()
    run_tests(Deleting)
    assert provision_calls == ["tenant_test"]  # once, after test_1 dropped it


# -- the mixin, collected by pytest like a project's own test classes --


class TestProjectsInATestCase(TenantTestMixin, TestCase):
    def test_the_tenant_is_ready_with_empty_tables(self):
        assert self.tenant.is_ready
        TenantProject = Project.for_tenant(self.tenant)
        assert TenantProject.objects.count() == 0
        TenantProject.objects.create(name="one")

    def test_relations_work_in_the_kept_schema(self):
        project = Project.for_tenant(self.tenant).objects.create(name="two")
        Report.for_tenant(self.tenant).objects.create(project=project, content="x")
        assert Report.for_tenant(self.tenant).objects.filter(project__name="two").count() == 1


class TestProjectsInATransactionTestCase(TenantTestMixin, TransactionTestCase):
    def test_rows_committed_by_one_test_are_gone_in_the_next(self):
        TenantProject = Project.for_tenant(self.tenant)
        assert TenantProject.objects.count() == 0
        TenantProject.objects.create(name="committed")

    def test_rows_committed_by_the_other_test_are_gone_too(self):
        TenantProject = Project.for_tenant(self.tenant)
        assert TenantProject.objects.count() == 0
        TenantProject.objects.create(name="committed")


# -- the pytest fixtures, imported into this module --


def check_fixture_tenant(tenant, kept, provision_calls):
    assert tenant.is_ready and tenant.db_schema == kept.schema == "tenant_test"
    assert Customer.objects.filter(pk=tenant.pk, state=TenantState.READY).exists()
    assert provision_calls == []  # nothing built for this test: the kept schema
    if on_postgresql():
        assert kept.present() and tenant.incarnation == kept.incarnation
    TenantProject = Project.for_tenant(tenant)
    assert TenantProject.objects.count() == 0  # whatever an earlier test wrote is gone
    TenantProject.objects.create(name="written")


@pytest.mark.parametrize("run", [1, 2])
def test_tenancy_tenant_in_a_rolled_back_test(provision_calls, tenancy_tenant, tenancy_schema, run):
    assert connection.in_atomic_block
    check_fixture_tenant(tenancy_tenant, tenancy_schema, provision_calls)


@pytest.mark.parametrize("run", [1, 2])
def test_tenancy_tenant_in_a_transactional_test(
    provision_calls, transactional_db, tenancy_tenant, tenancy_schema, run
):
    assert not connection.in_atomic_block
    check_fixture_tenant(tenancy_tenant, tenancy_schema, provision_calls)


@pytest.mark.django_db(transaction=True)
def test_tenancy_tenant_with_the_django_db_marker(provision_calls, tenancy_tenant, tenancy_schema):
    check_fixture_tenant(tenancy_tenant, tenancy_schema, provision_calls)


@pytest.fixture
def not_eager(settings):
    """Turn the suite's TENANCY_EAGER off, before the fixtures under test turn it on."""
    settings.TENANCY_EAGER = False


def test_tenancy_tenant_runs_the_lifecycle_inline(not_eager, tenancy_tenant):
    assert conf.eager()


def test_tenancy_eager_runs_the_lifecycle_inline(not_eager, tenancy_eager, transactional_db):
    assert conf.eager()
    tenant = Customer.objects.create(name="inline")
    try:
        tenant.refresh_from_db()
        assert tenant.state == TenantState.READY
    finally:
        drop_storage(tenant)


def test_the_test_tenant_fields_come_from_the_setting(settings):
    assert testing.tenant_fields() == {"name": "test"}
    settings.TENANCY_TEST_TENANT = {"name": "custom", "extra": 1}
    assert testing.tenant_fields() == {"name": "custom", "extra": 1}


# -- KeptSchema --


@pytest.mark.postgresql
@pytest.mark.skipif(BACKEND == "sqlite", reason="PostgreSQL only")
def test_a_kept_schema_makes_the_flush_truncate_with_cascade(tenancy_schema, db):
    sql = connection.ops.sql_flush(no_style(), ["auth_user"])
    assert any("CASCADE" in statement for statement in sql)


def test_a_schema_that_a_tenant_row_owns_is_never_rebuilt(transactional_db):
    kept = KeptSchema("tenant_owned", "default")
    kept.ensure()
    try:
        Customer._base_manager.bulk_create(
            [Customer(name="owned", db_schema="tenant_owned", state=TenantState.READY)]
        )
        with pytest.raises(TenancyError, match="belongs to the tenant"):
            KeptSchema("tenant_owned", "default").ensure()
    finally:
        kept.drop()


@pytest.mark.skipif(BACKEND != "sqlite", reason="PostgreSQL builds schemas inside transactions")
def test_missing_tables_inside_a_sqlite_transaction_get_a_clear_error(db):
    with pytest.raises(TenancyError, match="cannot build them inside a transaction"):
        KeptSchema("tenant_never_built", "default").ensure()


def test_clearing_keeps_the_tables_and_the_record_of_applied_migrations(
    transactional_db, tenancy_tenant, tenancy_schema
):
    Project.for_tenant(tenancy_tenant).objects.create(name="x")
    tenancy_schema.clear()
    assert Project.for_tenant(tenancy_tenant).objects.count() == 0
    applied = recorder.applied(tenancy_schema.schema, tenancy_schema.database)
    assert applied and applied == set(migration_plan().keys)


# -- pytest_plugins = ["tenancy.testing"] in a project's conftest.py --

PLUGIN_CONFTEST = """
import pytest
from tenancy._orchestration import building

pytest_plugins = ["tenancy.testing"]

builds = []
_build = building.build


def counting(schema, using, owner, **kwargs):
    builds.append(schema)
    return _build(schema, using, owner, **kwargs)


building.build = counting


@pytest.fixture(scope="session")
def tenancy_tenant_fields():
    return {"name": "plugin"}
"""

PLUGIN_TESTS = """
import pytest
from tenancy._primitives import storage
from tests.testapp.models import Project

import conftest

seen = []


def schema_identity(tenant):
    return storage.schema_oid(tenant.db_schema, tenant.database) or "sqlite"


@pytest.mark.parametrize("run", [1, 2, 3])
def test_transactional(run, transactional_db, tenancy_tenant):
    assert tenancy_tenant.db_schema == "tenant_plugin" and tenancy_tenant.is_ready
    assert Project.for_tenant(tenancy_tenant).objects.count() == 0
    Project.for_tenant(tenancy_tenant).objects.create(name="committed")
    seen.append(schema_identity(tenancy_tenant))


@pytest.mark.parametrize("run", [1, 2])
def test_rolled_back(run, tenancy_tenant):
    assert Project.for_tenant(tenancy_tenant).objects.count() == 0
    Project.for_tenant(tenancy_tenant).objects.create(name="rolled back")
    seen.append(schema_identity(tenancy_tenant))


def test_eager(tenancy_eager, settings):
    assert settings.TENANCY_EAGER is True


def test_zz_one_build_one_schema():
    assert conftest.builds == ["tenant_plugin"]
    assert len(seen) == 5 and len(set(seen)) == 1
"""


def test_the_fixtures_work_as_a_pytest_plugin(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(PLUGIN_CONFTEST))
    (tmp_path / "test_plugin_project.py").write_text(textwrap.dedent(PLUGIN_TESTS))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)]),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # A database of its own: this session holds the suite's test database.
        "TENANCY_PG_TEST_NAME": os.environ.get("TENANCY_PG_TEST_NAME", "test_tenancy") + "_plugin",
        "TENANCY_SQLITE_TEST_PATH": str(tmp_path / "plugin-test.sqlite3"),
    }
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--create-db", "-x"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "7 passed" in process.stdout

"""Defaults that fit any tenant model, not only one with a ``name`` field.

A project whose tenant model is ``Organization(slug=...)`` (tests/slug_project)
runs in subprocesses in eager mode (on SQLite, and on PostgreSQL where the
suite runs on it): subdomains find tenants by the field of ``natural_key()``,
the test helpers' default tenant fills that field, and what cannot be derived
is a system check at start-up naming the fix. The checks are also called here
on the suite's own tenant model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from benchmarks.services import pg_connect
from tenancy import checks
from tenancy._primitives import lookup
from tenancy.testing import new_tenant, tenant_fields
from tests.testapp.models import Customer

ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in the slug project (its own SQLite database)."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.slug_project.settings",
            "ORGS_SQLITE_PATH": str(tmp_path / "orgs.sqlite3"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result


def run_python(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in the slug project after ``django.setup()`` and ``migrate``."""
    prelude = textwrap.dedent(
        """
        import django
        django.setup()
        from django.core.management import call_command
        call_command("migrate", verbosity=0)
        """
    )
    return run(tmp_path, "-c", prelude + textwrap.dedent(code), **env)


def check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run(tmp_path, "-m", "django", "check", "--tag", "tenancy", **env)


REQUEST = """
from django.test import Client
from tests.slug_project.orgs.models import Note, Organization

org = Organization.objects.create(slug="h14slugorg")
org.refresh_from_db()
assert org.is_ready, org.state
Note.for_tenant(org).objects.create(title="hello")
response = Client().get("/notes/", HTTP_HOST="h14slugorg.example.com")
print(response.status_code, response.content.decode())
print(Client().get("/notes/", HTTP_HOST="h14nobody.example.com").status_code)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database(request) -> Iterator[dict[str, str]]:
    """The slug project's database: a SQLite file (the default) or a PostgreSQL database
    of its own, created and dropped here."""
    if request.param == "sqlite":
        yield {}
        return
    name = f"tenancy_h14_orgs_{os.getpid()}"
    admin = pg_connect("postgres")  # psycopg 3 or psycopg2, PGUSER/PGHOST/PGPORT honoured
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"ORGS_PG_NAME": name}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_subdomain_finds_a_tenant_by_the_field_of_its_natural_key(tmp_path, database):
    result = run_python(tmp_path, REQUEST, **database)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["200 h14slugorg: hello", "404"]


def test_a_subdomain_finds_a_tenant_by_the_lookup_field_the_model_declares(tmp_path):
    result = run_python(tmp_path, REQUEST, ORGS_KEY="two", ORGS_LOOKUP="slug")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["200 h14slugorg: hello", "404"]


def test_a_model_keyed_by_slug_passes_the_checks(tmp_path):
    result = check(tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_natural_key_of_two_fields_without_a_lookup_field_fails_the_check_naming_the_fix(
    tmp_path,
):
    result = check(tmp_path, ORGS_KEY="two")

    assert result.returncode != 0
    assert "tenancy.E012" in result.stderr
    assert "orgs.Organization declares no field to find tenants by" in result.stderr
    assert "several fields (('region', 'slug'))" in result.stderr
    assert "TENANT_LOOKUP_FIELD = 'slug'" in result.stderr


def test_a_lookup_field_the_model_lacks_fails_the_check(tmp_path):
    result = check(tmp_path, ORGS_LOOKUP="name")

    assert result.returncode != 0
    assert "tenancy.E012" in result.stderr
    assert "orgs.Organization has no field 'name' to find tenants by" in result.stderr
    assert "Organization.TENANT_LOOKUP_FIELD" in result.stderr


TEST_HELPERS = """
from tenancy.testing import kept_schema, tenant_fields
from tests.slug_project.orgs.models import Note

print(tenant_fields())
kept = kept_schema()
tenant = kept.create_tenant(tenant_fields())
Note.for_tenant(tenant).objects.create(title="x")
print(tenant.slug, tenant.db_schema, tenant.is_ready, Note.for_tenant(tenant).objects.count())
"""


def test_the_test_tenant_defaults_to_test_in_the_lookup_field(tmp_path, database):
    result = run_python(tmp_path, TEST_HELPERS, **database)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["{'slug': 'test'}", "test tenant_test True 1"]


def test_a_test_tenant_naming_fields_the_model_lacks_is_a_check_and_a_clear_error(tmp_path):
    fields = json.dumps({"name": "test"})

    checked = check(tmp_path, ORGS_TEST_TENANT=fields)
    used = run_python(tmp_path, TEST_HELPERS, ORGS_TEST_TENANT=fields)

    assert checked.returncode != 0
    assert "tenancy.E013" in checked.stderr
    assert "TENANCY_TEST_TENANT names 'name', which orgs.Organization lacks" in checked.stderr
    assert used.returncode != 0
    assert "TypeError" not in used.stderr
    assert "ImproperlyConfigured: The test tenant's fields {'name': 'test'} name 'name'" in (
        used.stderr
    )


def test_the_test_tenant_of_a_model_without_a_lookup_field_says_to_set_the_setting(tmp_path):
    result = run_python(tmp_path, TEST_HELPERS, ORGS_KEY="two")

    assert result.returncode != 0
    assert "ImproperlyConfigured: The test tenant's fields cannot be derived" in result.stderr
    assert "set TENANCY_TEST_TENANT" in result.stderr


def test_tenancy_missing_from_installed_apps_gets_the_librarys_own_message(tmp_path):
    result = check(tmp_path, ORGS_WITHOUT_TENANCY="1")

    assert result.returncode != 0
    assert "doesn't declare an explicit app_label" not in result.stderr
    assert (
        "ImproperlyConfigured: 'tenancy' is not in INSTALLED_APPS, but tenancy.models is "
        "imported" in result.stderr
    )
    assert "add 'tenancy' to INSTALLED_APPS" in result.stderr


# In this process, on the suite's own tenant model (Customer, keyed by name).


def test_the_lookup_field_is_the_natural_keys_field_then_the_models_then_the_setting(
    monkeypatch,
):
    assert lookup.lookup_field(Customer) == "name"
    monkeypatch.setattr(Customer, "TENANT_LOOKUP_FIELD", "db_schema", raising=False)
    assert lookup.lookup_field(Customer) == "db_schema"
    with override_settings(TENANCY_TENANT_LOOKUP_FIELD="incarnation"):
        assert lookup.lookup_field(Customer) == "incarnation"


def test_a_computed_natural_key_names_no_field(monkeypatch):
    monkeypatch.setattr(Customer, "natural_key", lambda self: (self.name.upper(),))

    assert lookup.natural_key_fields(Customer) is None
    with pytest.raises(ImproperlyConfigured, match="natural_key\\(\\) returns no field as is"):
        lookup.lookup_field(Customer)


def test_probing_the_natural_key_reads_no_database(monkeypatch):
    # No db fixture: any query would raise.
    monkeypatch.setattr(Customer, "natural_key", lambda self: (self.name, self.database))

    assert lookup.natural_key_fields(Customer) == ("name", "database")


MIDDLEWARE = {"MIDDLEWARE": ["tenancy.middleware.TenantMiddleware"]}


def test_the_lookup_check_passes_the_suites_tenant_model():
    with override_settings(**MIDDLEWARE):
        assert checks.check_tenant_lookup() == []


def test_the_lookup_check_names_a_setting_for_a_field_the_model_lacks():
    with override_settings(TENANCY_TENANT_LOOKUP_FIELD="slug"):
        (error,) = checks.check_tenant_lookup()

    assert error.id == "tenancy.E012"
    assert "testapp.Customer has no field 'slug'" in error.msg
    assert "TENANCY_TENANT_LOOKUP_FIELD" in error.msg


def test_the_lookup_check_asks_for_a_lookup_field_when_the_natural_key_has_two(monkeypatch):
    monkeypatch.setattr(Customer, "natural_key", lambda self: (self.name, self.database))

    with override_settings(**MIDDLEWARE):
        (error,) = checks.check_tenant_lookup()
    with override_settings(MIDDLEWARE=[]):
        unused = checks.check_tenant_lookup()  # nothing derives the field at run time

    assert error.id == "tenancy.E012"
    assert "several fields (('name', 'database'))" in error.msg
    assert "TENANT_LOOKUP_FIELD = 'slug'" in error.hint
    assert unused == []


def test_the_lookup_check_names_a_domain_field_the_model_lacks():
    with override_settings(**MIDDLEWARE, TENANCY_TENANT_RESOLVER="domain"):
        (error,) = checks.check_tenant_lookup()
    with override_settings(
        **MIDDLEWARE, TENANCY_TENANT_RESOLVER="domain", TENANCY_DOMAIN_FIELD="name"
    ):
        assert checks.check_tenant_lookup() == []

    assert error.id == "tenancy.E012"
    assert "no field 'domain' (TENANCY_DOMAIN_FIELD)" in error.msg


@pytest.mark.parametrize("value", [{"slug": "x"}, ["name", "x"]])
def test_the_test_tenant_check_refuses_fields_the_model_lacks(value):
    with override_settings(TENANCY_TEST_TENANT=value):
        (error,) = checks.check_test_tenant()

    assert error.id == "tenancy.E013"


def test_the_test_tenant_check_passes_the_models_fields():
    with override_settings(TENANCY_TEST_TENANT={"name": "x"}):
        assert checks.check_test_tenant() == []


def test_the_test_helpers_refuse_unknown_fields_with_the_fix():
    with pytest.raises(ImproperlyConfigured, match="name 'slug', which testapp.Customer has no"):
        new_tenant({"slug": "x"})
    assert tenant_fields() == {"name": "test"}

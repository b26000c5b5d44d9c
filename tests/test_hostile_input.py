"""Hostile input: natural keys built to break schema naming, and tenants trying to see
each other's rows. Property-based (hypothesis), on the database under test.

- Every natural key gives either a clear ``ValidationError`` or a safe schema name:
  a plain ``[a-z0-9_]`` identifier of at most 63 bytes, never a shared schema
  (``public``, ``pg_*``, ``information_schema``, ``tenancy_*``), distinct from the
  name of any other key (keys that normalise alike included).
- Creating a tenant from such a key changes nothing outside its own schema.
- Whatever the sequence of creates, updates and deletes across tenants, a tenant only
  ever sees its own rows.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tenancy
from tenancy._primitives import storage
from tenancy._primitives.naming import MAX_IDENTIFIER_BYTES, schema_name_for
from tenancy.exceptions import InvalidTenantKey
from tests.testapp.models import Customer, Project, Report

SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
SHARED = ("public", "information_schema")
SHARED_PREFIXES = ("pg_", "tenancy_")
PREFIXES = ("tenant_", "", "org_")

INJECTIONS = [
    'x"; DROP SCHEMA public CASCADE; --',
    "a'); DROP TABLE auth_user; --",
    'tenant_a"."testapp_project',
    "public",
    "PUBLIC",
    "pg_catalog",
    "pg_toast",
    "information_schema",
    "tenancy_pool_0123456789abcdef",
    "tenancy_migrations",
    "$1; SELECT pg_sleep(10)",
    "\\x27 OR 1=1",
    "Ω≈ç√∫ 北京 مرحبا 🚀",
    "e\u0301",  # e + combining accent: normalises like "é"
    "\u00e9",
    "ﬁ",  # a ligature that NFKD turns into "fi"
    "a" * 500,
]

unicode_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=500,
)
sql_ish = st.lists(
    st.sampled_from([*"aAzZ09_-'\";.,()*/\\ \t\n%$éßΩ𝔄", "DROP ", "--", "pg_", "public"]),
    min_size=1,
    max_size=20,
).map("".join)
clean = st.from_regex(r"[a-z0-9]{1,20}(_[a-z0-9]{1,20}){0,4}", fullmatch=True)
reserved = st.sampled_from(INJECTIONS)
keys = st.one_of(unicode_text, sql_ish, clean, reserved)


def _check_name(name: str, prefix: str) -> None:
    assert SAFE_NAME.match(name), name
    assert len(name.encode()) <= MAX_IDENTIFIER_BYTES, name
    assert name not in SHARED and not name.startswith(SHARED_PREFIXES), name
    assert name.startswith(prefix), name


# -- schema_name_for alone --


@settings(max_examples=400, deadline=None, database=None)
@given(key=st.lists(keys, min_size=1, max_size=3).map(tuple), prefix=st.sampled_from(PREFIXES))
@example(key=("public",), prefix="")
@example(key=("pg_catalog",), prefix="")
@example(key=("information_schema",), prefix="")
@example(key=("tenancy_pool_abc",), prefix="")
@example(key=('x"; DROP SCHEMA public CASCADE; --',), prefix="tenant_")
@example(key=("9lives",), prefix="")
def test_every_key_gives_a_validation_error_or_a_safe_identifier(key, prefix):
    try:
        name = schema_name_for(key, prefix)
    except InvalidTenantKey as error:
        assert isinstance(error, ValidationError)
        assert error.messages and "Invalid tenant key" in error.messages[0]
        return
    _check_name(name, prefix)
    assert schema_name_for(key, prefix) == name  # deterministic


def _alike(key: str) -> list[str]:
    """Keys that normalise like ``key``: case, spacing, punctuation, unicode forms."""
    return [
        key,
        key.upper(),
        key.lower(),
        key.title(),
        f" {key}",
        f"{key} ",
        key.replace("_", " "),
        key.replace("_", "-"),
        key.replace(" ", "_"),
        f"{key}!",
        unicodedata.normalize("NFC", key),
        unicodedata.normalize("NFD", key),
        unicodedata.normalize("NFKC", key),
        "".join(c + "\u0301" if c.isalpha() else c for c in key),
    ]


@settings(max_examples=300, deadline=None, database=None)
@given(key=keys, prefix=st.sampled_from(PREFIXES))
@example(key="acme corp", prefix="tenant_")
@example(key="a" * 200, prefix="tenant_")
def test_keys_that_normalise_alike_never_share_a_schema(key, prefix):
    named: dict[str, str] = {}
    for variant in dict.fromkeys(_alike(key)):
        try:
            name = schema_name_for((variant,), prefix)
        except InvalidTenantKey:
            continue
        assert named.setdefault(name, variant) == variant, (
            f"{variant!r} and {named[name]!r} both name {name!r}"
        )


def test_a_clean_key_cannot_take_the_schema_that_another_key_was_hashed_to():
    """A key that is already a clean identifier is used as is, and a hashed name is a
    clean identifier: so anyone can sign up under the exact name another key hashes
    to (the hash is public, deterministic, and needs no secret)."""
    hashed = schema_name_for(("Acme Corp",), "tenant_")  # tenant_acme_corp_<8 hex>
    squatter = hashed.removeprefix("tenant_")
    assert schema_name_for((squatter,), "tenant_") != hashed


def test_a_multi_part_key_does_not_collide_with_a_key_holding_the_separator():
    assert schema_name_for(("a", "b"), "tenant_") != schema_name_for(("a\x1fb",), "tenant_")


# -- real tenants (eager lifecycle) --


def _catalog() -> set[str]:
    """Every schema and table of the database, as ``kind:name`` strings."""
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            cursor.execute("SELECT nspname FROM pg_namespace")
            found = {f"schema:{row[0]}" for row in cursor.fetchall()}
            cursor.execute("SELECT schemaname, tablename FROM pg_tables")
            found |= {f"table:{schema}.{table}" for schema, table in cursor.fetchall()}
            cursor.execute("SELECT rolname FROM pg_roles")
            return found | {f"role:{row[0]}" for row in cursor.fetchall()}
        return {f"table:{name}" for name in connection.introspection.table_names(cursor)}


def _owned_by(schema: str, entry: str) -> bool:
    return entry in (f"schema:{schema}", f"role:{schema}") or entry.startswith(
        (f"table:{schema}.", f"table:{schema}{storage.PREFIX_SEPARATOR}")
    )


# "%" is left to test_a_tenant_name_cannot_break_or_forge_the_lifecycle_log_lines below,
# where it is a known bug (pytest's log capture raises on it, so it would hide the rest).
names = st.one_of(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00%"),
        min_size=1,
        max_size=60,  # the test model's name is 50 characters: longer ones must be refused
    ),
    sql_ish.filter(lambda name: "%" not in name),
    reserved,
)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=names)
@example(name='x"; DROP SCHEMA public CASCADE; --')
@example(name="a'); DROP TABLE auth_user; --")
@example(name='tenant_a"."testapp_project')
@example(name="Ω≈ç√∫ 北京 مرحبا 🚀")
@example(name="   ")
@example(name="x" * 51)
def test_a_tenant_created_from_any_key_changes_nothing_outside_its_schema(name):
    before = _catalog()
    tenant = Customer(name=name)
    try:
        tenant.full_clean()  # what a form, the admin and createtenant do first
    except ValidationError:
        assert _catalog() == before
        assert not Customer.objects.exists()
        return
    try:
        tenant.save()  # eager: provisioned inline
        tenant.refresh_from_db()
        assert tenant.is_ready
        _check_name(tenant.db_schema, "tenant_")
        after = _catalog()
        assert {e for e in after if not _owned_by(tenant.db_schema, e)} == before
        assert storage.schema_exists(tenant.db_schema, tenant.database)
        Project.for_tenant(tenant).objects.create(name=name[:50])
        assert Project.for_tenant(tenant).objects.get().name == name[:50]
        assert Customer.objects.get(db_schema=tenant.db_schema).name == name
    finally:
        for created in Customer.objects.filter(name=name):
            created.delete()  # eager: the schema is dropped inline
        tenancy.clear_cache()
    assert _catalog() == before


@pytest.mark.parametrize("name", ["public", "pg_catalog", "information_schema", "tenancy_pool_x"])
def test_with_an_empty_prefix_a_shared_schema_name_is_a_validation_error(name, db, settings):
    settings.TENANCY_SCHEMA_PREFIX = ""
    before = _catalog()
    with pytest.raises(ValidationError, match="reserved"):
        Customer(name=name).full_clean()
    with pytest.raises(ValidationError, match="reserved"), transaction.atomic():
        Customer.objects.create(name=name)
    assert _catalog() == before


@pytest.mark.django_db(transaction=True)
def test_signing_up_under_another_keys_hashed_name_is_a_validation_error(make_tenant):
    """The squatter (see above) passes full_clean() today and fails at save with an
    IntegrityError on the unique schema column, or, signing up first, takes the schema
    name so that the real "Acme Corp" can never sign up."""
    squatter_name = schema_name_for(("Acme Corp",), "tenant_").removeprefix("tenant_")
    make_tenant(squatter_name)
    victim = Customer(name="Acme Corp")
    try:
        victim.full_clean()
    except ValidationError:
        return  # refused clearly: fine
    try:
        with transaction.atomic():
            victim.save()
    except IntegrityError as error:
        pytest.fail(f'"Acme Corp" cannot sign up once {squatter_name!r} exists: {error}')
    victim.refresh_from_db()
    assert victim.db_schema != Customer.objects.get(name=squatter_name).db_schema


@pytest.mark.parametrize("name", ["100% sure", "50%_off", "%s%s%n", "%(schema)s"])
def test_a_tenant_name_with_percent_signs_is_logged_verbatim(name, make_tenant, caplog):
    """The lifecycle prefixes its log lines with the tenant's name; a name is user input
    and must stay data, never become part of the message's %-format string."""
    caplog.set_level("INFO", logger="tenancy")
    make_tenant(name)  # pytest's log capture raises where a plain handler prints an error
    lines = [record.getMessage() for record in caplog.records]
    assert any(f"tenant={name} " in line and "provisioned in" in line for line in lines)


def test_a_tenant_name_cannot_forge_a_log_line_about_another_tenant(make_tenant, caplog):
    caplog.set_level("INFO", logger="tenancy")
    make_tenant("x\n[tenant=victim schema=tenant_victim] dropped")
    forged = [
        line
        for record in caplog.records
        for line in record.getMessage().splitlines()
        if line.startswith("[tenant=victim")
    ]
    assert forged == []


# -- isolation between tenants as a property --

TENANTS = 3

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, TENANTS - 1), st.integers(0, 9)),
        st.tuples(st.just("rename"), st.integers(0, TENANTS - 1), st.integers(0, 30)),
        st.tuples(st.just("delete"), st.integers(0, TENANTS - 1), st.integers(0, 30)),
        st.tuples(st.just("delete_pk"), st.integers(0, TENANTS - 1), st.integers(1, 30)),
        st.tuples(st.just("report"), st.integers(0, TENANTS - 1), st.integers(0, 30)),
        st.tuples(st.just("steal"), st.integers(0, TENANTS - 1), st.integers(0, 30)),
        st.tuples(st.just("evict"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=40,
)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_operations_across_tenants_never_show_a_tenant_another_tenants_rows(
    ops, make_tenant, settings
):
    settings.TENANCY_MODEL_CACHE_SIZE = 2  # fewer than the tenants: classes get rebuilt
    tenants = list(Customer.objects.filter(name__startswith="iso").order_by("name"))
    if not tenants:
        tenants = [make_tenant(f"iso{n}") for n in range(TENANTS)]
    for tenant in tenants:
        Report.for_tenant(tenant).objects.all().delete()
        Project.for_tenant(tenant).objects.all().delete()
    # The model: each tenant's projects (pk -> name) and reports (pk -> project pk).
    projects: list[dict[int, str]] = [{} for _ in tenants]
    reports: list[dict[int, int]] = [{} for _ in tenants]

    def pick(mapping: dict[int, str], index: int) -> int | None:
        return sorted(mapping)[index % len(mapping)] if mapping else None

    def forget(which: int, project_pk: int) -> None:
        del projects[which][project_pk]
        reports[which] = {r: p for r, p in reports[which].items() if p != project_pk}

    for step, (op, which, arg) in enumerate(ops):
        tenant, mine = tenants[which], projects[which]
        TenantProject = Project.for_tenant(tenant)
        if op == "create":
            name = f"{tenant.name}-p{step}"
            mine[TenantProject.objects.create(name=name).pk] = name
        elif op == "rename" and (pk := pick(mine, arg)) is not None:
            mine[pk] = f"{tenant.name}-r{step}"
            TenantProject.objects.filter(pk=pk).update(name=mine[pk])
        elif op == "delete" and (pk := pick(mine, arg)) is not None:
            TenantProject.objects.get(pk=pk).delete()  # cascades to its reports
            forget(which, pk)
        elif op == "delete_pk":
            # Primary keys repeat across tenants: deleting "pk=arg" acts in this tenant only.
            deleted, _ = TenantProject.objects.filter(pk=arg).delete()
            assert bool(deleted) == (arg in mine)
            if arg in mine:
                forget(which, arg)
        elif op == "report" and (pk := pick(mine, arg)) is not None:
            project = TenantProject.objects.get(pk=pk)
            report = Report.for_tenant(tenant).objects.create(project=project, content="r")
            reports[which][report.pk] = pk
        elif op == "steal":
            # Another tenant's project instance cannot be attached to this tenant's report.
            other = (which + 1) % len(tenants)
            if (pk := pick(projects[other], arg)) is not None:
                foreign = Project.for_tenant(tenants[other]).objects.get(pk=pk)
                with pytest.raises(ValueError, match="row of tenant .* belongs to tenant"):
                    Report.for_tenant(tenant)(project=foreign)
        elif op == "evict":
            tenancy.clear_cache()
        for index, each in enumerate(tenants):
            seen = dict(Project.for_tenant(each).objects.values_list("pk", "name"))
            assert seen == projects[index], f"{each.name} sees {seen}, expected {projects[index]}"
            TenantReport = Report.for_tenant(each)
            assert dict(TenantReport.objects.values_list("pk", "project_id")) == reports[index]
            joined = dict(TenantReport.objects.values_list("pk", "project__name"))
            assert joined == {r: projects[index][p] for r, p in reports[index].items()}

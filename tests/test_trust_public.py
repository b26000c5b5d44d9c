"""Trust, through the public API only: the library touches only what it built, one
incarnation of a tenant owns one set of tables, and lifecycle operations are durable.

These tests use tenant models, ``for_tenant()``, deletes, ``bulk_create``, the
management commands, the Celery tasks (``.apply()``), ``Tombstone`` and raw SQL; they
import none of the library's internal modules, which are being restructured.

- Ownership: a schema, table or role that the library did not build is never adopted,
  never dropped, and never shadowed (the connecting role's own schema name).
- Identity: an instance of a deleted tenant never reaches a later tenant's tables; a
  cached class never outlives its tenant's state; a renamed tenant's old name and keys
  that normalise alike can always sign up.
- Durable operations: a delete survives an unreachable tenant database, rows inserted
  without save() are provisioned (or fail with their reason), the reconciler run by
  hand does its work or says why not, and a move carries its sequences over and never
  guesses which tenant a key means.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import unicodedata
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from tenancy import tasks
from tenancy.exceptions import TenancyError, TenantNotReady
from tenancy.models import Tombstone
from tests.support import not_on_citus_moves
from tests.testapp.models import Customer, Project

READY, FAILED, PENDING = "ready", "failed", "pending"


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


# -- what exists on the database, read with raw SQL --


def storage_names(alias: str = "default") -> set[str]:
    """Every schema (PostgreSQL) or table (SQLite) of the database ``alias``, but the
    system's own (``pg_*`` temporary schemas, ``sqlite_*`` tables), which come and go."""
    with connections[alias].cursor() as cursor:
        if connections[alias].vendor == "postgresql":
            cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE %s", [r"pg\_%"])
            return {row[0] for row in cursor.fetchall()}
        names = connections[alias].introspection.table_names(cursor)
        return {name for name in names if not name.startswith("sqlite_")}


def schema_exists(name: str, alias: str = "default") -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def role_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles")
        return {row[0] for row in cursor.fetchall()}


def current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def make_foreign_storage(name: str) -> None:
    """Build by hand storage the library did not build, under ``name``: a schema with a
    table and a row (PostgreSQL), or a table with the prefix ``name`` (SQLite, where a
    tenant's tables are named ``<prefix>__<table>``)."""
    with connection.cursor() as cursor:
        if on_postgresql():
            cursor.execute(f"CREATE SCHEMA {quote(name)}")
            cursor.execute(f"CREATE TABLE {quote(name)}.keep (x int)")
            cursor.execute(f"INSERT INTO {quote(name)}.keep VALUES (1)")
        else:
            cursor.execute(f"CREATE TABLE {quote(name + '__keep')} (x int)")
            cursor.execute(f"INSERT INTO {quote(name + '__keep')} VALUES (1)")


def foreign_rows(name: str) -> list[int] | None:
    """The rows of the table that :func:`make_foreign_storage` built, or None if it is gone."""
    with connection.cursor() as cursor:
        if on_postgresql():
            cursor.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'keep'", [name]
            )
            if cursor.fetchone() is None:
                return None
            cursor.execute(f"SELECT x FROM {quote(name)}.keep ORDER BY x")
        else:
            if name + "__keep" not in connection.introspection.table_names(cursor):
                return None
            cursor.execute(f"SELECT x FROM {quote(name + '__keep')} ORDER BY x")
        return [row[0] for row in cursor.fetchall()]


def insert_without_save(**values) -> None:
    """Insert a tenant row with raw SQL, as another program or a data import would: no
    save(), no signal. Columns not given get their model default."""
    columns, params = [], []
    for field in Customer._meta.concrete_fields:
        if field.primary_key:
            continue
        value = values[field.name] if field.name in values else field.get_default()
        columns.append(quote(field.column))
        params.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Customer._meta.db_table)} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(params))})",
            params,
        )


def project_names(tenant: Customer) -> list[str]:
    return list(Project.for_tenant(tenant).objects.values_list("name", flat=True))


# -- clean-up --


class Leftovers:
    """What a test leaves outside its tenants: schemas or tables it (or the library on
    its behalf) created, and roles. Dropped at the end, before the flush."""

    def __init__(self, aliases: list[str]) -> None:
        self.aliases = aliases
        self.before = {alias: storage_names(alias) for alias in aliases}
        self.roles_before = role_names() if on_postgresql() else set()
        self.own_roles: set[str] = set()

    def role(self, name: str | None) -> None:
        """Drop the role ``name`` at the end (made by the test, or named after its tenant)."""
        if name:
            self.own_roles.add(name)

    def clean(self) -> None:
        created = {alias: storage_names(alias) - self.before[alias] for alias in self.aliases}
        candidates = set(self.own_roles)
        candidates |= {name for names in created.values() for name in names}
        candidates |= set(
            Customer.objects.exclude(db_schema=None).values_list("db_schema", flat=True)
        )
        candidates |= set(Tombstone.objects.values_list("schema", flat=True))
        for alias, names in created.items():
            _drop_storage(alias, names)
        if on_postgresql():
            present = role_names()
            mine = (candidates - self.roles_before) | self.own_roles
            for role in sorted(mine & present - {current_user()}):
                for alias in self.aliases:
                    with connections[alias].cursor() as cursor:
                        cursor.execute(f"DROP OWNED BY {quote(role)}")
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP ROLE {quote(role)}")


def _drop_storage(alias: str, names: set[str]) -> None:
    target = connections[alias]
    if not names:
        return
    if target.vendor == "postgresql":
        with target.cursor() as cursor:
            for name in sorted(names):
                cursor.execute(f"DROP SCHEMA IF EXISTS {target.ops.quote_name(name)} CASCADE")
        return
    with target.schema_editor() as editor:  # SQLite: constraint checks off while dropping
        for name in sorted(names):
            editor.execute(f"DROP TABLE IF EXISTS {target.ops.quote_name(name)}")


@pytest.fixture(autouse=True)
def leftovers(make_tenant, request):
    """Every test here runs on a transactional database (through ``make_tenant``, whose
    teardown drops what is left of the tenant schemas) and leaves nothing behind:
    hand-made schemas, schemas of tenants named without the ``tenant`` prefix, roles."""
    marker = request.node.get_closest_marker("django_db")
    databases = marker.kwargs.get("databases") if marker else None
    aliases = ["default"]
    if on_postgresql() and (databases == "__all__" or (databases and "other" in databases)):
        aliases.append("other")
    found = Leftovers(aliases)
    yield found
    found.clean()


@pytest.fixture
def deferred(settings, broker):
    """Provisioning sent to a private Redis queue that no worker consumes: a new tenant
    is named and stays pending until the test provisions it by hand."""
    import redis

    queue = "nobody-" + uuid.uuid4().hex
    settings.TENANCY_EAGER = False
    settings.TENANCY_CELERY_QUEUE = queue
    yield queue
    client = redis.Redis.from_url(broker.url)
    try:
        client.delete(queue)
    finally:
        client.close()


# == Ownership: the library touches only what it built ==


def test_a_new_tenant_routes_around_a_schema_that_already_has_its_name():
    """Another application, a restore or an operator made a schema under the name the new
    tenant's key gives. The tenant must get storage of its own: neither fail for good
    (its name would be blocked forever) nor adopt someone else's data."""
    make_foreign_storage("tenant_victim")
    customer = Customer.objects.create(name="victim")
    customer.refresh_from_db()
    assert customer.state == READY, customer.last_error
    assert customer.db_schema != "tenant_victim"
    assert foreign_rows("tenant_victim") == [1]


def test_deleting_a_tenant_never_drops_a_schema_it_did_not_build():
    """Whatever became of the signup, the hand-made schema is not the tenant's: deleting
    the tenant must leave it and its rows alone (no DROP SCHEMA ... CASCADE)."""
    make_foreign_storage("tenant_victim")
    with contextlib.suppress(TenancyError):  # whether the signup works is the test above's
        Customer.objects.create(name="victim")
    Customer.objects.get(name="victim").delete()
    assert foreign_rows("tenant_victim") == [1], "the tenant's delete dropped a foreign schema"


def test_a_schema_made_between_naming_and_provisioning_fails_the_tenant_and_survives_its_delete(
    deferred, settings
):
    """The tenant is named at signup and provisioned later by a worker; a schema of that
    name that appears in between is not the tenant's: provisioning fails and says which
    schema is in the way, and deleting the failed tenant leaves that schema alone."""
    customer = Customer.objects.create(name="latecomer")  # the task waits in nobody's queue
    schema = customer.db_schema
    assert schema, "a tenant created with save() is named at signup"
    make_foreign_storage(schema)
    settings.TENANCY_EAGER = True
    tasks.provision_tenant.apply(args=[customer.pk])
    customer.refresh_from_db()
    assert customer.state == FAILED
    assert schema in customer.last_error
    customer.delete()
    assert foreign_rows(schema) == [1], "the failed tenant's delete dropped a foreign schema"


@pytest.mark.postgresql
def test_a_tenant_never_takes_over_an_existing_role_named_like_its_schema(settings, leftovers):
    """With TENANCY_SCHEMA_AUTHORIZATION each schema gets a role of its name. A role of
    that name that exists already belongs to someone else: the tenant must not be
    handed it (nor grant it its tables), and deleting the tenant must not drop it."""
    settings.TENANCY_SCHEMA_AUTHORIZATION = True
    leftovers.role("tenant_rolex")
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE tenant_rolex NOLOGIN")
    customer = Customer.objects.create(name="rolex")
    customer.refresh_from_db()
    leftovers.role(customer.db_schema)
    assert customer.state == READY, customer.last_error
    assert customer.db_schema != "tenant_rolex"
    customer.delete()
    assert "tenant_rolex" in role_names(), "the tenant's delete dropped a role it did not create"


@pytest.mark.postgresql
def test_with_an_empty_prefix_no_key_takes_a_name_the_database_gives_a_meaning(settings):
    """PostgreSQL's default search_path is ``"$user", public``: a schema named like the
    connecting role comes first for every unqualified query of the project, so a tenant
    given that name would shadow the shared tables. Shared and system schema names are
    never a tenant's either. Each key is refused or named otherwise."""
    settings.TENANCY_SCHEMA_PREFIX = ""
    user = current_user()
    taken = []
    for key in (user, "public", "information_schema", "pg_foo"):
        try:
            with transaction.atomic():
                tenant = Customer.objects.create(name=key)
        except ValidationError:
            continue  # refused clearly: fine
        tenant.refresh_from_db()
        name = tenant.db_schema or ""
        if name in (key, user, "public", "information_schema") or name.startswith("pg_"):
            taken.append((key, name))
    assert taken == [], f"keys given a schema name that means something else: {taken}"


@pytest.mark.postgresql
def test_with_an_empty_prefix_a_key_never_takes_a_hand_made_schema_of_its_name(settings):
    settings.TENANCY_SCHEMA_PREFIX = ""
    make_foreign_storage("shopx")
    try:
        with transaction.atomic():
            tenant = Customer.objects.create(name="shopx")
    except ValidationError:
        tenant = None  # refused clearly: fine
    if tenant is not None:
        tenant.refresh_from_db()
        assert tenant.db_schema != "shopx"
        tenant.delete()
    assert foreign_rows("shopx") == [1]


# == Identity: one incarnation, one set of tables ==


def _refuses_the_deleted_incarnation(old_copy: Customer, new: Customer) -> None:
    """``for_tenant()`` on an instance of a deleted tenant must refuse, saying why; and
    whatever it does, that instance never reads or writes the new tenant's rows."""
    try:
        OldProject = Project.for_tenant(old_copy)
    except TenancyError as error:
        assert "deleted" in str(error).lower(), f"refused, but not as deleted: {error}"
        return
    NewProject = Project.for_tenant(new)
    if not NewProject.objects.filter(name="new-row").exists():
        NewProject.objects.create(name="new-row")
    try:
        seen = list(OldProject.objects.values_list("name", flat=True))
    except DatabaseError:
        seen = []  # the deleted tenant's tables are gone: it reads nothing, fine
    assert "new-row" not in seen, (
        f"the deleted tenant's instance reads the new tenant's rows {seen}"
    )
    before = NewProject.objects.count()
    with contextlib.suppress(DatabaseError):
        OldProject.objects.create(name="ghost")
    assert NewProject.objects.count() == before, "the deleted tenant's instance writes into the new"
    pytest.fail("for_tenant() gave classes for an instance of a deleted tenant instead of refusing")


def test_an_instance_of_a_deleted_tenant_is_refused_once_a_new_tenant_of_its_key_is_cached(
    make_tenant,
):
    """A request, a task or a shell that read the tenant before it was deleted keeps its
    instance. The key signed up again: that instance names the same schema as the new
    tenant, whose classes this process has cached, and must not be served them."""
    old = make_tenant("acme")
    Project.for_tenant(old).objects.create(name="old-row")
    old_copy = Customer.objects.get(pk=old.pk)
    old.delete()
    new = Customer.objects.create(name="acme")
    new.refresh_from_db()
    assert new.state == READY, new.last_error
    Project.for_tenant(new).objects.create(name="new-row")  # the new tenant's classes cached
    _refuses_the_deleted_incarnation(old_copy, new)


def test_an_instance_of_a_deleted_tenant_is_refused_when_its_own_classes_were_cached(make_tenant):
    """As above, but this process cached the old tenant's classes before the delete, and
    the new tenant's classes are not built yet when the old instance asks."""
    old = make_tenant("acme")
    old_copy = Customer.objects.get(pk=old.pk)
    Project.for_tenant(old_copy).objects.create(name="old-row")  # cached before the delete
    old.delete()
    new = Customer.objects.create(name="acme")
    new.refresh_from_db()
    assert new.state == READY, new.last_error
    _refuses_the_deleted_incarnation(old_copy, new)


def test_a_cached_tenant_that_failed_is_refused(make_tenant):
    """The class cache is a speed-up, not a second source of truth: a tenant whose row
    says failed is not ready, whether or not its classes are cached."""
    tenant = make_tenant("flaky")
    Project.for_tenant(tenant)  # the cache is warm
    Customer.objects.filter(pk=tenant.pk).update(state=FAILED)
    tenant.refresh_from_db()
    with pytest.raises(TenantNotReady):
        Project.for_tenant(tenant)


def test_a_tenant_instance_is_refused_after_its_own_delete(make_tenant):
    tenant = make_tenant("gone")
    Project.for_tenant(tenant)  # the cache is warm
    tenant.delete()
    with pytest.raises(TenancyError):
        Project.for_tenant(tenant)


def test_a_renamed_tenants_old_name_can_sign_up_again(make_tenant):
    """A tenant's schema is fixed at creation, so a rename keeps it; the old name is free
    again as a name, and signing it up must work, with storage of its own."""
    first = Customer.objects.create(name="acme")
    first.name = "acme2"
    first.save()
    second = Customer.objects.create(name="acme")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (READY, READY), (first.last_error, second.last_error)
    assert first.db_schema != second.db_schema
    Project.for_tenant(first).objects.create(name="first-row")
    Project.for_tenant(second).objects.create(name="second-row")
    assert project_names(first) == ["first-row"]
    assert project_names(second) == ["second-row"]


#: Two keys that the old naming gave the same schema, tenant_acme_corp_d605a9ad. Found
#: offline with the old formula (old_schema_name below): a birthday search over keys
#: "<s1>acme<s2>corp<s3>", each s a string of 0-2 (s2: 1-4) of the characters
#: " -.!~_,+*#", which all normalise to the slug "acme_corp"; the first collision of the
#: 32-bit hash came after 52,044 keys.
COLLIDING_KEYS = ("acme   corp~.", "acme.**corp!~")


def old_schema_name(key: str, prefix: str = "tenant_") -> str:
    """The old naming of a single-part key that is not a clean identifier: its slug plus
    ``_`` and a 32-bit blake2b hash of the JSON list of parts."""
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_key.lower()).strip("_")
    digest = hashlib.blake2b(json.dumps([key]).encode("utf-8"), digest_size=4).hexdigest()
    return f"{prefix}{slug}_{digest}"


def test_keys_whose_hashed_names_collided_both_sign_up(make_tenant):
    """A 32-bit hash collides after about 65,000 keys that normalise alike; a collision
    must cost a different name, never a signup that fails on the unique schema column."""
    first, second = COLLIDING_KEYS
    assert first != second
    assert old_schema_name(first) == old_schema_name(second) == "tenant_acme_corp_d605a9ad"
    one = Customer.objects.create(name=first)
    two = Customer.objects.create(name=second)
    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.state, two.state) == (READY, READY), (one.last_error, two.last_error)
    assert one.db_schema != two.db_schema


# == Durable operations ==


@pytest.fixture
def repoint_unreachable(leftovers):
    """The tenant schemas "on" the unreachable database really are on default: at the end,
    point their tombstones there and let the drop task do its work (what the leftovers
    fixture finds after that, it drops)."""
    yield
    pks = list(
        Tombstone.objects.filter(database="unreachable", done_at=None).values_list("pk", flat=True)
    )
    Tombstone.objects.filter(pk__in=pks).update(database="default")
    for pk in pks:
        tasks.drop_tenant.apply(args=[pk])


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_deleting_a_tenant_whose_database_is_unreachable_still_writes_its_tombstone(
    make_tenant, repoint_unreachable
):
    """The tenant row and its tombstone are on the shared database, which answers; the
    drop itself can wait for the tenant's server (the reconciler resends it). A delete
    must not fail because the drop cannot happen now."""
    tenant = make_tenant("far")
    Customer.objects.filter(pk=tenant.pk).update(database="unreachable")  # port 1
    tenant.refresh_from_db()
    schema = tenant.db_schema
    tenant.delete()
    assert not Customer.objects.filter(name="far").exists()
    assert Tombstone.objects.filter(schema=schema, database="unreachable", done_at=None).exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_queryset_delete_with_an_unreachable_tenant_deletes_both_and_drops_the_reachable_one(
    make_tenant, repoint_unreachable
):
    far, near = make_tenant("far"), make_tenant("near")
    Customer.objects.filter(pk=far.pk).update(database="unreachable")
    Customer.objects.filter(pk__in=[far.pk, near.pk]).delete()
    assert not Customer.objects.filter(pk__in=[far.pk, near.pk]).exists()
    assert not schema_exists(near.db_schema), "the reachable tenant's schema was not dropped"
    assert Tombstone.objects.filter(
        schema=far.db_schema, database="unreachable", done_at=None
    ).exists()


def test_bulk_created_tenants_are_ready_right_after_in_eager_mode():
    """bulk_create() sends no post_save; in eager mode the tenants must be provisioned
    all the same, without waiting for someone to run the reconciler."""
    Customer.objects.bulk_create([Customer(name="bulk1"), Customer(name="bulk2")])
    states = dict(Customer.objects.filter(name__in=["bulk1", "bulk2"]).values_list("name", "state"))
    assert states == {"bulk1": READY, "bulk2": READY}
    for tenant in Customer.objects.filter(name__in=["bulk1", "bulk2"]):
        assert project_names(tenant) == []


@pytest.mark.parametrize("insert", ["bulk_create", "raw_sql"])
def test_a_row_whose_key_cannot_name_a_schema_ends_failed_with_the_reason(insert):
    """Rows inserted without save() skip the key's validation. Such a row must not stay
    pending forever, nor stop the reconciler: it ends failed and says what is wrong."""
    if insert == "bulk_create":
        Customer.objects.bulk_create([Customer(name="!!!")])
    else:
        insert_without_save(
            name="!!!", state=PENDING, db_schema=None, state_changed_at=timezone.now()
        )
    call_command("tenancy_reconcile", stdout=io.StringIO(), stderr=io.StringIO())
    tenant = Customer.objects.get(name="!!!")
    assert tenant.state == FAILED, f"still {tenant.state} after tenancy_reconcile"
    assert "key" in tenant.last_error.lower(), tenant.last_error


def test_reconcile_run_by_hand_provisions_a_row_inserted_a_moment_ago():
    """An operator runs the command to have the work done now: a pending row that no
    worker holds is provisioned, however recent, without any --grace."""
    insert_without_save(
        name="fresh", state=PENDING, db_schema=None, state_changed_at=timezone.now()
    )
    call_command("tenancy_reconcile", stdout=io.StringIO(), stderr=io.StringIO())
    tenant = Customer.objects.get(name="fresh")
    assert tenant.state == READY, f"still {tenant.state}: {tenant.last_error}"
    assert project_names(tenant) == []


def test_reconcile_with_a_grace_says_what_it_left_alone_and_how_to_include_it(deferred):
    Customer.objects.create(name="queued")  # pending, its task in nobody's queue
    out, err = io.StringIO(), io.StringIO()
    call_command("tenancy_reconcile", "--grace", "60", stdout=out, stderr=err)
    said = out.getvalue() + err.getvalue()
    assert "grace" in said.lower(), said
    assert re.search(r"\b1\b", said), f"the number of tenants left alone is missing: {said}"
    assert "--grace 0" in said, said


@pytest.fixture
def two_databases(settings):
    settings.TENANCY_DATABASES = ["default", "other"]


@not_on_citus_moves
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_move_carries_sequences_over_so_ids_of_deleted_rows_are_never_reused(two_databases):
    """Ids of deleted rows may still be referenced (logs, caches, other systems); after a
    move the sequence must go on from where it was, not from the highest id left."""
    tenant = Customer.objects.create(name="seq", database="default")
    tenant.refresh_from_db()
    TenantProject = Project.for_tenant(tenant)
    assert [TenantProject.objects.create(name=f"p{i}").pk for i in (1, 2, 3)] == [1, 2, 3]
    TenantProject.objects.filter(pk=3).delete()
    call_command("tenancy_move", "seq", "other", stdout=io.StringIO())
    tenant.refresh_from_db()
    assert tenant.database == "other"
    assert Project.for_tenant(tenant).objects.create(name="after").pk > 3


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_move_by_a_key_that_names_two_tenants_is_refused_and_moves_neither(two_databases):
    """tenancy_move takes a schema or a name; when one tenant's name is another tenant's
    schema, the key is ambiguous, and moving either one would be a guess."""
    bee = Customer.objects.create(name="bee", database="default")
    key = bee.db_schema  # "tenant_bee" with the default prefix
    Customer.objects.create(name=key, database="default")
    with pytest.raises(CommandError):
        call_command("tenancy_move", key, "other", stdout=io.StringIO())
    assert dict(Customer.objects.values_list("name", "database")) == {
        "bee": "default",
        key: "default",
    }


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_move_by_a_primary_key_that_is_no_primary_key_is_a_clear_error():
    """``--pk x`` on an integer key names no tenant; it is said so, not a raw ValueError."""
    with pytest.raises(CommandError, match="No tenant has the primary key 'x'"):
        call_command("tenancy_move", "x", "default", pk=True, stdout=io.StringIO())

"""Helpers for a project's own tests: a ready tenant, fast.

Building a tenant's schema costs tens to hundreds of milliseconds; doing it
for every test adds up. These helpers build the test tenant's schema once
per process, keep it, and between tests only delete the rows of its tables.
The tenant row itself is created for each test (or each ``TestCase`` class)
in the test's database state, already ``ready``, with the lifecycle eager.

- :class:`TenantTestMixin` for Django's ``TestCase`` (preferred: the tenant
  row is created once per class and every test is rolled back, so nothing
  needs clearing) and ``TransactionTestCase`` (the tenant's rows are deleted
  after each test; the schema stays);
- pytest fixtures, with ``pytest_plugins = ["tenancy.testing"]`` in a
  ``conftest.py``: ``tenancy_tenant`` (a ready tenant, with ``db`` or
  ``transactional_db``), ``tenancy_eager`` (the lifecycle runs inline),
  ``tenancy_tenant_fields`` and ``tenancy_schema``.

The test tenant's field values come from the ``TENANCY_TEST_TENANT`` setting
(default: ``"test"`` in the tenant model's lookup field, ``{"name": "test"}`` for a
model keyed by ``name``, ``{"slug": "test"}`` for one keyed by ``slug``), the
mixin's ``tenant_fields`` attribute or an overridden ``tenancy_tenant_fields``
fixture. See ``docs/testing.md``.

On PostgreSQL, while a schema is kept, Django's flush between transactional
tests runs ``TRUNCATE ... CASCADE`` (the tenant's tables keep foreign keys to
shared tables such as ``auth_user``, which PostgreSQL would otherwise refuse
to truncate).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import connections, transaction
from django.test.utils import override_settings

from tenancy._migrating.plan import plan
from tenancy._migrating.recorder import RECORD_TABLE
from tenancy._orchestration import building
from tenancy._orchestration.transitions import send_robust
from tenancy._primitives import conf, lookup, ownership, provisioning, shared, storage
from tenancy._primitives.states import READY
from tenancy.exceptions import TenancyError
from tenancy.signals import tenant_provisioned

if TYPE_CHECKING:
    from tenancy.models import AbstractTenant

try:
    import pytest
except ImportError:  # pragma: no cover - the mixin works without pytest
    pytest = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_TEST_KEY",
    "DEFAULT_TEST_TENANT",
    "KeptSchema",
    "TenantTestMixin",
    "kept_schema",
    "new_tenant",
    "release_schemas",
    "tenant_fields",
]

logger = logging.getLogger("tenancy.testing")

#: The test tenant's value of the tenant model's lookup field when ``TENANCY_TEST_TENANT``
#: is not set.
DEFAULT_TEST_KEY = "test"
#: Field values of the test tenant when ``TENANCY_TEST_TENANT`` is not set and the tenant
#: model's lookup field is ``name`` (for another field: ``{field: DEFAULT_TEST_KEY}``).
DEFAULT_TEST_TENANT: Mapping[str, Any] = {"name": DEFAULT_TEST_KEY}


def tenant_fields() -> dict[str, Any]:
    """Return the test tenant's field values: ``TENANCY_TEST_TENANT``, else ``"test"`` in
    the tenant model's lookup field (``{"name": "test"}``, ``{"slug": "test"}``).

    Raises ``ImproperlyConfigured`` when the setting is not set and the tenant
    model has no lookup field to derive it from.
    """
    configured = getattr(settings, "TENANCY_TEST_TENANT", None)
    if configured:
        return dict(configured)
    model = shared.tenant_model()
    try:
        field = lookup.lookup_field(model)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            f"The test tenant's fields cannot be derived: {exc} Or set TENANCY_TEST_TENANT "
            "to the field values of a test tenant, e.g. {'slug': 'test'}."
        ) from None
    return {field: DEFAULT_TEST_KEY}


def new_tenant(fields: Mapping[str, Any]) -> AbstractTenant:
    """Return an unsaved tenant with ``fields``; raise ``ImproperlyConfigured`` naming the
    fields the tenant model lacks (instead of the model's ``TypeError``)."""
    model = shared.tenant_model()
    unknown = []
    for name in fields:
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            unknown.append(name)
    if unknown:
        known = ", ".join(f.name for f in model._meta.concrete_fields if f.editable)
        raise ImproperlyConfigured(
            f"The test tenant's fields {dict(fields)!r} name {', '.join(map(repr, unknown))}, "
            f"which {model._meta.label} has no field of: set TENANCY_TEST_TENANT (or the "
            f"mixin's tenant_fields) to values of its fields ({known})."
        )
    tenant: AbstractTenant = model(**fields)
    return tenant


class KeptSchema:
    """A test tenant's schema, built once per process and kept between tests.

    It is marked as owned by a test incarnation derived from its name and
    database (the same in every run, so a schema left by an earlier run with
    ``--reuse-db`` is recognised as the test tenant's and rebuilt); each test's
    tenant row takes that incarnation. ``dirty`` is true while committed rows
    may be left in its tables (after a transactional test that did not clean up).
    """

    def __init__(self, schema: str, database: str) -> None:
        self.schema = schema
        self.database = database
        digest = hashlib.blake2b(f"kept:{database}:{schema}".encode(), digest_size=16)
        self.incarnation = digest.hexdigest()
        self.owner = ownership.tenant_owner(self.incarnation)
        self.built = False
        self.dirty = False

    def __repr__(self) -> str:
        return f"<KeptSchema {self.schema} on {self.database}>"

    def prepare(self) -> None:
        """Make the schema exist (built by this process) and its tables empty."""
        self.ensure()
        if self.dirty:
            self.clear()

    def ensure(self) -> None:
        """Build the schema unless this process built it and it is still there.

        A schema left by an earlier run (``--reuse-db``, ``--keepdb``) is
        rebuilt from the current models; one that a tenant row owns, or that
        the library did not build, is refused.
        """
        if self.built and self.present():
            return
        connection = connections[self.database]
        if connection.in_atomic_block and not storage.uses_schemas(connection):
            raise TenancyError(
                f"The test tenant's tables ({self.schema}) are missing and SQLite cannot build "
                "them inside a transaction (this test's): a test dropped them, e.g. by deleting "
                "the test tenant in a transactional test, or they were never built. Build them "
                "before the test's transaction opens: use TenantTestMixin, or the "
                "tenancy_schema fixture (session scope), and do not drop the test tenant's storage."
            )
        found = ownership.schema_owner(self.schema, self.database)
        if found.exists:
            self._refuse_if_owned()
            if found.owner != self.owner:
                raise TenancyError(
                    f"The test tenant's schema name {self.schema} is taken on "
                    f"{self.database!r} by a schema that tenancy.testing did not build; it is "
                    "left alone. Drop it, or name another test tenant with TENANCY_TEST_TENANT."
                )
            provisioning.drop_schema(self.schema, self.database, self.owner)
        building.build(self.schema, self.database, self.owner)
        self.built, self.dirty = True, False
        if storage.uses_schemas(connection):
            _cascade_flushes(connection)

    def present(self) -> bool:
        """Return whether the schema this process built is still there (one catalog query)."""
        return ownership.owns_schema(self.schema, self.database, self.owner)

    def clear(self) -> None:
        """Delete every row of the tenant's tables; keep the tables, the migration record
        and the ownership mark.

        ``TRUNCATE ... CASCADE`` on PostgreSQL, ``DELETE`` elsewhere, in one
        transaction, of the tables that hold rows (truncating a table costs
        far more than asking whether it is empty).
        """
        connection = connections[self.database]
        tables = storage.existing_tenant_tables(self.schema, self.database)
        for kept in (RECORD_TABLE, ownership.OWNER_TABLE):
            tables.discard(storage.table_name(self.schema, kept, self.database))
        committed = not connection.in_atomic_block
        names = [connection.ops.quote_name(table) for table in sorted(tables)]
        with transaction.atomic(using=self.database), connection.cursor() as cursor:
            filled = _filled(cursor, names)
            if filled and storage.uses_schemas(connection):
                cursor.execute(f"TRUNCATE {', '.join(filled)} CASCADE")
            else:
                # Foreign keys are deferred to the commit, when every table is empty.
                for name in filled:
                    cursor.execute(f"DELETE FROM {name}")
        if committed:  # inside a test's transaction the rows come back at its rollback
            self.dirty = False

    def tidy(self) -> None:
        """After a transactional test: empty the tables, if the test left them standing."""
        if self.built and self.present():
            self.clear()

    def drop(self) -> None:
        """Drop the schema; the next use builds it again."""
        provisioning.drop_schema(self.schema, self.database, self.owner)
        self.built, self.dirty = False, False

    def create_tenant(self, fields: Mapping[str, Any]) -> AbstractTenant:
        """Create the ready tenant row of this schema, in the current database state.

        ``tenancy.signals.tenant_provisioned`` is sent (robustly, as after a real
        provisioning), so receivers that seed a new tenant's data run.
        """
        model = shared.tenant_model()
        the_plan = plan()
        tenant = new_tenant(fields)
        tenant.db_schema = self.schema
        tenant.database = self.database
        tenant.incarnation = self.incarnation
        tenant.state = READY
        tenant.migrations_digest = the_plan.digest
        tenant.migrations_applied = len(the_plan.keys)
        # Eager, so the provisioning that post_save enqueues after commit finds the
        # tenant ready and does nothing, worker or not.
        with override_settings(TENANCY_EAGER=True):
            tenant.save(using=shared.database())
        send_robust(tenant_provisioned, sender=model, tenant=tenant)
        return tenant

    def _refuse_if_owned(self) -> None:
        owner = shared.tenants().filter(db_schema=self.schema).first()
        if owner is not None:
            raise TenancyError(
                f"The test tenant's schema {self.schema} belongs to the tenant {owner!r}; "
                "tenancy.testing only rebuilds a schema that no tenant row owns. Run the tests "
                "on a test database, or name another test tenant with TENANCY_TEST_TENANT."
            )


_kept: dict[tuple[str, str], KeptSchema] = {}


def kept_schema(fields: Mapping[str, Any] | None = None) -> KeptSchema:
    """Return the kept schema of the test tenant with ``fields``, built and empty.

    ``fields`` defaults to ``TENANCY_TEST_TENANT``. Call it outside a
    transaction the first time (SQLite cannot build tables inside one).
    """
    values = tenant_fields() if fields is None else dict(fields)
    schema = new_tenant(values).derive_schema()
    database = conf.default_database()
    kept = _kept.setdefault((schema, database), KeptSchema(schema, database))
    kept.prepare()
    return kept


def release_schemas() -> None:
    """Drop every schema this process keeps (each is built again on its next use)."""
    for kept in _kept.values():
        if kept.built:
            kept.drop()
    for connection in connections.all(initialized_only=True):
        vars(connection.ops).pop("sql_flush", None)


def _filled(cursor: Any, names: list[str]) -> list[str]:
    """Return the tables (quoted names) among ``names`` that hold rows, in one query."""
    if not names:
        return []
    cursor.execute(
        " UNION ALL ".join(f"SELECT %s WHERE EXISTS (SELECT 1 FROM {name})" for name in names),
        names,
    )
    return [row[0] for row in cursor.fetchall()]


def _cascade_flushes(connection: Any) -> None:
    """Make Django's flush on ``connection`` truncate with CASCADE (PostgreSQL).

    ``TransactionTestCase`` flushes the shared tables after each test, and
    PostgreSQL refuses to ``TRUNCATE auth_user`` while a tenant table has a
    foreign key to it, unless the truncate cascades into that table too.
    """
    ops = connection.ops
    if "sql_flush" in vars(ops):
        return
    original = ops.sql_flush

    def sql_flush(
        style: Any, tables: Any, *, reset_sequences: bool = False, allow_cascade: bool = False
    ) -> list[str]:
        return original(style, tables, reset_sequences=reset_sequences, allow_cascade=True)

    ops.sql_flush = sql_flush


def _in_test_transaction() -> bool:
    """Return whether the test runs in a transaction rolled back at its end (``TestCase``)."""
    return connections[shared.database()].in_atomic_block


class TenantTestMixin:
    """Give every test of a Django ``TestCase`` or ``TransactionTestCase`` a ready ``self.tenant``.

    The tenant's schema is built once per process and kept; the lifecycle is
    eager (``TENANCY_EAGER``) for the whole class. With ``TestCase`` (the
    faster choice) the tenant row is created once per class, before
    ``setUpTestData()``, and each test's changes are rolled back. With
    ``TransactionTestCase`` the row is created before each test's
    ``setUp()`` and the tenant's tables are emptied after it. Example::

        from django.test import TestCase
        from tenancy.testing import TenantTestMixin

        class ProjectTests(TenantTestMixin, TestCase):
            tenant_fields = {"name": "acme"}  # default: TENANCY_TEST_TENANT

            def test_create(self):
                Project.for_tenant(self.tenant).objects.create(name="first")

    Subclasses that override ``setUpClass``, ``setUpTestData`` or ``setUp``
    call ``super()`` first. ``databases`` must include the tenant's database
    when it is not ``"default"``.
    """

    #: Field values of the test tenant; None means ``TENANCY_TEST_TENANT``.
    tenant_fields: ClassVar[Mapping[str, Any] | None] = None
    tenant: AbstractTenant
    _tenancy_kept: ClassVar[KeptSchema]

    @classmethod
    def get_tenant_fields(cls) -> dict[str, Any]:
        """Return the field values of this class's test tenant."""
        return tenant_fields() if cls.tenant_fields is None else dict(cls.tenant_fields)

    @classmethod
    def setUpClass(cls) -> None:
        # The schema is built here, before TestCase opens its class-wide transaction
        # (SQLite builds tables only outside one), with the class's own settings.
        class_settings = getattr(cls, "_overridden_settings", None) or {}
        with override_settings(TENANCY_EAGER=True), override_settings(**class_settings):
            cls._tenancy_kept = kept_schema(cls.get_tenant_fields())
        cls.enterClassContext(override_settings(TENANCY_EAGER=True))  # type: ignore[attr-defined]
        super().setUpClass()  # type: ignore[misc]

    @classmethod
    def setUpTestData(cls) -> None:
        cls.tenant = cls._tenancy_kept.create_tenant(cls.get_tenant_fields())
        parent = getattr(super(), "setUpTestData", None)
        if parent is not None:
            parent()

    def setUp(self) -> None:
        if not _in_test_transaction():
            # TransactionTestCase: committed rows, flushed after the test.
            kept = self._tenancy_kept
            kept.prepare()
            kept.dirty = True
            self.addCleanup(kept.tidy)  # type: ignore[attr-defined]
            self.tenant = kept.create_tenant(self.get_tenant_fields())
        super().setUp()  # type: ignore[misc]


if pytest is not None:

    @pytest.fixture(scope="session")
    def tenancy_tenant_fields() -> dict[str, Any]:
        """Field values of the test tenant (``TENANCY_TEST_TENANT``); override it in a
        conftest.py with a session-scoped fixture of the same name."""
        return tenant_fields()

    @pytest.fixture
    def tenancy_eager() -> Iterator[None]:
        """Run the tenant lifecycle inline (``TENANCY_EAGER = True``) during the test."""
        with override_settings(TENANCY_EAGER=True):
            yield

    @pytest.fixture(scope="session")
    def tenancy_schema(
        django_db_setup: None, django_db_blocker: Any, tenancy_tenant_fields: dict[str, Any]
    ) -> KeptSchema:
        """The test tenant's schema, built once per session, outside any test's transaction."""
        with django_db_blocker.unblock(), override_settings(TENANCY_EAGER=True):
            return kept_schema(tenancy_tenant_fields)

    @pytest.fixture
    def tenancy_tenant(
        tenancy_schema: KeptSchema,
        tenancy_tenant_fields: dict[str, Any],
        tenancy_eager: None,
        db: None,
    ) -> Iterator[AbstractTenant]:
        """A ready tenant on the kept schema, with empty tables.

        Works with ``db`` (rolled back after the test: preferred) and with
        ``transactional_db`` (the tenant's rows are deleted after the test).
        """
        transactional = not _in_test_transaction()
        tenancy_schema.prepare()
        if transactional:
            tenancy_schema.dirty = True
        tenant = tenancy_schema.create_tenant(tenancy_tenant_fields)
        yield tenant
        if transactional:
            tenancy_schema.tidy()

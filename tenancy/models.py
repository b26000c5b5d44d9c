"""The public model API: ``AbstractTenant``, ``TenantState`` and ``TenantModel``."""

from __future__ import annotations

from typing import Any, Self

from django.db import models
from django.utils import timezone

from tenancy import cache, conf, notify
from tenancy.exceptions import TenancyError, TenantNotReady
from tenancy.naming import schema_name_for
from tenancy.registry import TenantModelBase, default_manager_guard, template_of


class TenantState(models.TextChoices):
    """Where a tenant is in its lifecycle."""

    PENDING = "pending", "pending"
    PROVISIONING = "provisioning", "provisioning"
    READY = "ready", "ready"
    FAILED = "failed", "failed"


class AbstractTenant(models.Model):
    """Abstract base of the project's tenant model (``TENANCY_TENANT_MODEL``).

    The subclass defines ``natural_key()``, whose tuple names the tenant's
    schema once, at creation. Example::

        class Customer(AbstractTenant):
            name = models.CharField(max_length=50, unique=True)

            def natural_key(self):
                return (self.name,)
    """

    state = models.CharField(
        max_length=16,
        choices=TenantState.choices,
        default=TenantState.PENDING,
        db_index=True,
        editable=False,
    )
    # NULL until named: rows from bulk_create() or raw SQL get their name
    # when provisioned (several NULLs never collide in the unique index).
    db_schema = models.CharField(  # noqa: DJ001
        "schema",
        max_length=63,
        unique=True,
        null=True,
        editable=False,
        help_text="Schema (PostgreSQL) or table prefix of the tenant; fixed at creation.",
    )
    database = models.CharField(
        max_length=100,
        blank=True,
        default="",
        editable=False,
        help_text="Database alias that holds the tenant's schema; chosen at creation "
        "(TENANCY_DATABASES, TENANCY_PLACEMENT) unless given.",
    )
    last_error = models.TextField(blank=True, default="", editable=False)
    state_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    #: Fingerprint of the tenant-model migrations the schema is at; equal to
    #: ``tenancy.migrator.plan().digest`` when the tenant is current.
    migrations_digest = models.CharField(max_length=32, blank=True, default="", editable=False)
    migrations_applied = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        abstract = True

    def natural_key(self) -> tuple[Any, ...]:
        """Return the tuple that names this tenant; subclasses must define it."""
        raise NotImplementedError(
            f"{type(self).__name__} must define natural_key(), e.g. `return (self.name,)`."
        )

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Self:
        # **kwargs: Django 6.1 passes fetch_mode=...
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._tenancy_stored_schema = instance.__dict__.get("db_schema")
        return instance

    def derive_schema(self) -> str:
        """Return the schema name this tenant's natural key gives (see tenancy.naming)."""
        return schema_name_for(self.natural_key(), conf.schema_prefix())

    def clean(self) -> None:
        """Refuse a natural key that cannot name a schema (forms, admin, full_clean())."""
        super().clean()
        if not self.db_schema:
            self.derive_schema()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and not self.db_schema:
            self.db_schema = self.derive_schema()
        if self._state.adding:
            from tenancy import placement

            if self.database:
                placement.check(self.database)
            else:
                self.database = placement.choose(self)
        stored = self.__dict__.get("_tenancy_stored_schema")
        if stored is not None and self.db_schema != stored:
            raise TenancyError(
                f"The schema of tenant {self!r} is fixed at creation ({stored!r}); it cannot "
                f"become {self.db_schema!r}. Renaming a tenant keeps its schema."
            )
        super().save(*args, **kwargs)
        self._tenancy_stored_schema = self.db_schema

    @property
    def is_ready(self) -> bool:
        """Whether the tenant's schema is provisioned (as of this instance's last read)."""
        return self.state == TenantState.READY

    def wait_until_ready(self, timeout: float | None = None, *, poll: float = 0.05) -> Self:
        """Block until a worker has provisioned the tenant; return the tenant.

        Raises :class:`~tenancy.exceptions.TenantNotReady` when provisioning
        failed or ``timeout`` seconds passed first.
        """

        def settled() -> bool:
            self.refresh_from_db(fields=["state", "last_error", "state_changed_at", "db_schema"])
            return self.state in (TenantState.READY, TenantState.FAILED)

        notify.wait(settled, self._state.db or "default", timeout, poll)
        if self.state == TenantState.READY:
            return self
        if self.state == TenantState.FAILED:
            raise TenantNotReady(self, self.state, self.last_error)
        raise TenantNotReady(self, self.state, f"still {self.state} after {timeout}s")


class TenantModel(models.Model, metaclass=TenantModelBase):
    """Abstract base of tenant-specific models.

    Each concrete subclass is a *template*: it has no table, and
    ``Template.for_tenant(tenant)`` returns the tenant's own class, a real
    subclass of the template with schema-qualified tables. Example::

        class Project(TenantModel):
            name = models.CharField(max_length=50)

        Project.for_tenant(customer).objects.create(name="first")
    """

    objects = default_manager_guard()

    class Meta:
        abstract = True

    @classmethod
    def for_tenant(cls, tenant: AbstractTenant) -> type[Self]:
        """Return ``tenant``'s class of this template (cached per process).

        Raises :class:`~tenancy.exceptions.TenantNotReady` if the tenant is
        not provisioned yet.
        """
        return cache.model_for(cls, tenant)  # type: ignore[return-value]

    def __reduce__(self) -> tuple[Any, ...]:
        cls = type(self)
        if "_tenancy_schema" not in cls.__dict__:
            return super().__reduce__()
        data = self.__getstate__()
        import django

        data[models.base.DJANGO_VERSION_PICKLE_KEY] = django.__version__
        template = template_of(cls)
        return (
            _unpickle,
            (template._meta.label, cls._tenancy_schema, cls._tenancy_database),
            data,
        )


def _unpickle(label: str, schema: str, database: str) -> models.Model:
    """Recreate a pickled tenant instance with its tenant's class."""
    from tenancy import get_tenant_model
    from tenancy.registry import TEMPLATES

    template = TEMPLATES[label.lower()]
    bundle = cache.cached(schema)
    if bundle is None:
        tenant = get_tenant_model()._default_manager.get(db_schema=schema)
        bundle = cache.tenant_models(tenant)
    model = bundle.models[template]
    return model.__new__(model)


class Tombstone(models.Model):
    """The durable intent to drop a deleted tenant's schema.

    Written in the transaction that deletes the tenant row, so a drop can
    never be lost between the delete and the worker (the reconciler
    re-enqueues tombstones that are not done).
    """

    schema = models.CharField(max_length=63, db_index=True)
    database = models.CharField(max_length=100)
    #: PostgreSQL's oid of the schema when the tenant was deleted: a schema of the
    #: same name created later (the key signed up again) is never dropped by mistake.
    schema_oid = models.BigIntegerField(null=True, blank=True)
    tenant_pk = models.CharField(max_length=64)
    tenant_repr = models.CharField(max_length=200, blank=True)
    deleted_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    done_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["deleted_at"]
        verbose_name = "tenant tombstone"

    def __str__(self) -> str:
        state = "dropped" if self.done_at else "pending drop"
        return f"{self.schema} on {self.database} ({state})"


class PoolSchema(models.Model):
    """A schema built ahead of time, at the current migrations, waiting for a signup.

    Provisioning renames one to the new tenant's schema in one short
    transaction (see :mod:`tenancy.pool`); its name never looks like a tenant's.
    """

    name = models.CharField(max_length=63, unique=True)
    database = models.CharField(max_length=100, db_index=True)
    #: The migration plan digest the schema was built at; stale ones are never handed out.
    digest = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "pooled schema"

    def __str__(self) -> str:
        return f"{self.name} on {self.database}"

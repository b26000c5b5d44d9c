"""The public model API: ``AbstractTenant``, ``TenantModel``, ``TenantState`` and the
library's bookkeeping models (``Tombstone``, ``PoolSchema``, ``TenantOperation``,
``RolloutRefusal``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import django
from django.db import DJANGO_VERSION_PICKLE_KEY, models, transaction
from django.utils import timezone

from tenancy._classes import cache
from tenancy._classes.registry import TEMPLATES, TenantModelBase, default_manager_guard
from tenancy._primitives import allocation, conf, jobs, notify, shared
from tenancy._primitives.markers import TENANT_MODEL_ATTR, template_of
from tenancy._primitives.naming import schema_name_for
from tenancy._primitives.records import PoolSchema, RolloutRefusal, TenantOperation, Tombstone
from tenancy._primitives.states import TenantState
from tenancy.caches import TenantCache
from tenancy.exceptions import InvalidTenantKey, TenancyError, TenantNotReady

__all__ = [
    "LIFECYCLE_FIELDS",
    "AbstractTenant",
    "PoolSchema",
    "RolloutRefusal",
    "TemplateAccessor",
    "TenantManager",
    "TenantModel",
    "TenantOperation",
    "TenantQuerySet",
    "TenantState",
    "Tombstone",
]

#: Lifecycle fields a tenant row keeps for its whole life once it is named.
_IDENTITY = ("db_schema", "incarnation")
#: The fields the lifecycle writes; ``save()`` of an existing tenant leaves them alone.
LIFECYCLE_FIELDS = frozenset(
    {
        "state",
        "db_schema",
        "database",
        "incarnation",
        "last_error",
        "state_changed_at",
        "migrations_digest",
        "migrations_applied",
    }
)


class TenantQuerySet(models.QuerySet):
    """The tenant model's queryset: ``bulk_create()`` names and provisions its rows."""

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Insert tenants as ``save()`` would: named, placed, and provisioned after commit.

        A tenant whose key names no schema is inserted unnamed; its
        provisioning marks it failed with the reason.
        """
        objs = list(objs)
        alias = self.db
        with transaction.atomic(using=alias):
            for tenant in objs:
                tenant._tenancy_name_on_insert()
            created = super().bulk_create(objs, *args, **kwargs)
            for tenant in created:
                if tenant.pk is not None:
                    _send_provisioning(tenant, alias)
        return created


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):  # type: ignore[misc]
    """The default manager of tenant models (subclass it for a manager of your own)."""


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
    # NULL until named: rows from bulk_create() of an unnamable key, or raw SQL, get
    # their name when provisioned (several NULLs never collide in the unique index).
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
    #: Who this tenant is, for its storage: the ownership mark of its schema (and role)
    #: names it. A tenant deleted and signed up again is a new incarnation.
    incarnation = models.CharField(  # noqa: DJ001
        max_length=32, unique=True, null=True, editable=False
    )
    last_error = models.TextField(blank=True, default="", editable=False)
    state_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    #: Fingerprint of the tenant-model migrations the schema is at; equal to the
    #: migration plan's digest when the tenant is current.
    migrations_digest = models.CharField(max_length=32, blank=True, default="", editable=False)
    migrations_applied = models.PositiveIntegerField(default=0, editable=False)

    objects = TenantManager()

    class Meta:
        abstract = True

    def natural_key(self) -> tuple[Any, ...]:
        """Return the tuple that names this tenant; subclasses must define it."""
        raise NotImplementedError(
            f"{type(self).__name__} must define natural_key(), e.g. `return (self.name,)`."
        )

    natural_key._tenancy_undefined = True  # type: ignore[attr-defined]

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Self:
        # **kwargs: Django 6.1 passes fetch_mode=...
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._tenancy_stored = tuple(instance.__dict__.get(name) for name in _IDENTITY)
        return instance

    def derive_schema(self) -> str:
        """Return the schema name this tenant's natural key prefers (before checking that
        nothing else has it); raises ``InvalidTenantKey`` for a key that names none."""
        return schema_name_for(self.natural_key(), conf.schema_prefix())

    def clean(self) -> None:
        """Refuse a natural key that cannot name a schema (forms, admin, full_clean())."""
        super().clean()
        if not self.db_schema:
            self.derive_schema()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            self._refuse_identity_change()
            if kwargs.get("update_fields") is None and not args:
                # The lifecycle owns its fields: saving an instance read before a worker
                # provisioned the tenant must not write "pending" back over "ready".
                kwargs["update_fields"] = [
                    f.name
                    for f in self._meta.concrete_fields
                    if not f.primary_key and f.name not in LIFECYCLE_FIELDS
                ]
            super().save(*args, **kwargs)
            return
        alias = kwargs.get("using") or shared.database()
        # The name is checked and locked in the transaction that inserts the row.
        with transaction.atomic(using=alias):
            allocation.name_new(self)
            super().save(*args, **kwargs)
        self._tenancy_stored = tuple(getattr(self, name) for name in _IDENTITY)

    def _tenancy_name_on_insert(self) -> None:
        """Name a tenant inserted by ``bulk_create()``; leave an unnamable one unnamed."""
        try:
            allocation.name_new(self)
        except InvalidTenantKey:
            self.db_schema = None

    def _refuse_identity_change(self) -> None:
        stored = self.__dict__.get("_tenancy_stored")
        if stored is None:
            return
        for name, before in zip(_IDENTITY, stored, strict=True):
            now = getattr(self, name)
            if before is not None and now != before:
                raise TenancyError(
                    f"The {name} of tenant {self!r} is fixed at creation ({before!r}); it "
                    f"cannot become {now!r}. Renaming a tenant keeps its schema."
                )

    @property
    def cache(self) -> TenantCache:
        """The default cache (``CACHES["default"]``) with keys that carry this tenant.

        A cheap proxy made at each access; ``tenancy.caches.for_tenant(tenant, alias)``
        gives another configured cache. See :mod:`tenancy.caches`. Example::

            customer.cache.set("plan", "pro")
            customer.cache.get("plan")  # another tenant's "plan" is never this one
        """
        return TenantCache(self)

    @property
    def is_ready(self) -> bool:
        """Whether the tenant's schema is provisioned (as of this instance's last read)."""
        return self.state == TenantState.READY

    def wait_until_ready(self, timeout: float | None = None, *, poll: float = 0.05) -> Self:
        """Block until a worker has provisioned the tenant; return the tenant.

        Raises :class:`~tenancy.exceptions.TenantNotReady` when provisioning
        failed or ``timeout`` seconds passed first.
        """

        notify.wait(self._tenancy_settled, self._state.db or shared.database(), timeout, poll)
        return self._tenancy_outcome(timeout)

    async def await_until_ready(self, timeout: float | None = None, *, poll: float = 0.05) -> Self:
        """Wait, without blocking the event loop, until the tenant is provisioned; return it.

        The async twin of :meth:`wait_until_ready`, with the same errors: raises
        :class:`~tenancy.exceptions.TenantNotReady` when provisioning failed or
        ``timeout`` seconds passed first (and ``DoesNotExist`` when the tenant was
        deleted). It reads the tenant's row every ``poll`` seconds through
        ``sync_to_async`` and sleeps with ``asyncio.sleep()`` in between. Example::

            customer = await Customer.objects.acreate(name="acme")
            await customer.await_until_ready(timeout=30)
        """
        await notify.async_wait(
            self._tenancy_settled, self._state.db or shared.database(), timeout, poll
        )
        return self._tenancy_outcome(timeout)

    def _tenancy_settled(self) -> bool:
        """Read the lifecycle fields again; return whether the tenant is ready or failed."""
        self.refresh_from_db(
            fields=["state", "last_error", "state_changed_at", "db_schema", "incarnation"]
        )
        return self.state in (TenantState.READY, TenantState.FAILED)

    def _tenancy_outcome(self, timeout: float | None) -> Self:
        """Return the tenant after a wait, or raise why it is not ready."""
        if self.state == TenantState.READY:
            return self
        if self.state == TenantState.FAILED:
            raise TenantNotReady(self, self.state, self.last_error)
        raise TenantNotReady(self, self.state, f"still {self.state} after {timeout}s")


setattr(AbstractTenant, TENANT_MODEL_ATTR, True)


class TemplateAccessor:
    """``tenant.projects``: the default manager of the tenant's class of a template.

    Installed on the tenant model for each template under its
    ``TenantMeta.related_name`` (default: the model's name in lower case plus
    "s"; a name ending with "+" installs none), as django-tenancy 0.3 did::

        class Project(TenantModel):
            class TenantMeta:
                related_name = "projects"

        customer.projects.create(name="first")  # Project.for_tenant(customer).objects
    """

    def __init__(self, template: type[TenantModel]) -> None:
        self.template = template

    def __get__(self, tenant: AbstractTenant | None, owner: type | None = None) -> Any:
        if tenant is None:
            return self
        return self.template.for_tenant(tenant)._default_manager


def template_accessors(tenant_model: type[models.Model]) -> dict[str, type[models.Model]]:
    """Return ``{accessor name: template}`` of the accessors the tenant model gets."""
    accessors = {}
    for template in TEMPLATES.values():
        name = getattr(template, "_tenancy_related_name", None)
        if name and not name.endswith("+"):
            accessors[name] = template
    return accessors


def install_template_accessors(tenant_model: type[models.Model]) -> list[str]:
    """Put a :class:`TemplateAccessor` on the tenant model for each template; return the
    names left out because the tenant model already has an attribute of that name
    (the system check ``tenancy.W002`` reports them)."""
    taken = []
    for name, template in template_accessors(tenant_model).items():
        current = next((c.__dict__[name] for c in tenant_model.__mro__ if name in c.__dict__), None)
        if current is not None and not isinstance(current, TemplateAccessor):
            taken.append(name)
            continue
        setattr(tenant_model, name, TemplateAccessor(template))  # type: ignore[arg-type]
    return taken


def _send_provisioning(tenant: AbstractTenant, alias: str) -> None:
    jobs.send_after_commit(jobs.PROVISION, tenant.pk, using=alias, database=tenant.database)


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
        not provisioned yet, :class:`~tenancy.exceptions.TenantDeleted` if the
        instance is of a tenant that was deleted. From async code a cached tenant
        is served as well; a miss raises ``TenantNotReady`` if the instance says
        the tenant is not ready, else :class:`~tenancy.exceptions.TenantNotCached`
        (use :meth:`afor_tenant`).
        """
        return cache.model_for(cls, tenant)  # type: ignore[return-value]

    @classmethod
    async def afor_tenant(cls, tenant: AbstractTenant) -> type[Self]:
        """Return ``tenant``'s class of this template, from async code.

        The async twin of :meth:`for_tenant`, with the same errors: a cached
        tenant is a dictionary hit; otherwise its row is read through
        ``sync_to_async`` and its classes are built and cached, so that later
        ``for_tenant()`` calls, sync or async, are hits. Example::

            TenantProject = await Project.afor_tenant(request.tenant)
            count = await TenantProject.objects.acount()
        """
        return await cache.amodel_for(cls, tenant)  # type: ignore[return-value]

    def __reduce__(self) -> str | tuple[Any, ...]:
        cls = type(self)
        if "_tenancy_schema" not in cls.__dict__:
            return super().__reduce__()
        data = self.__getstate__()
        data[DJANGO_VERSION_PICKLE_KEY] = django.__version__
        template = template_of(cls)
        bundle = cache.cached(cls._tenancy_schema)  # type: ignore[attr-defined]
        incarnation = bundle.incarnation if bundle is not None else None
        return (
            _unpickle,
            (template._meta.label, cls._tenancy_schema, cls._tenancy_database, incarnation),  # type: ignore[attr-defined]
            data,
        )


def _unpickle(
    label: str, schema: str, database: str, incarnation: str | None = None
) -> models.Model:
    """Recreate a pickled tenant instance with its tenant's class (never another incarnation's)."""
    template = TEMPLATES[label.lower()]
    bundle = cache.cached(schema)
    if bundle is None or (incarnation is not None and bundle.incarnation != incarnation):
        tenant = shared.tenants().get(db_schema=schema)
        if incarnation is not None and tenant.incarnation != incarnation:
            raise TenancyError(
                f"The tenant of schema {schema} that this row was pickled from is gone."
            )
        bundle = cache.tenant_models(tenant)
    model = bundle.models[template]
    return model.__new__(model)

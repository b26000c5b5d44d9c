"""The library's own bookkeeping tables, on the shared database.

Each row is a durable intent or a durable record of a multi-step operation,
written before the work starts, so that a crash at any step leaves something
the reconciler can finish or undo. Exposed as ``tenancy.models.*``.
"""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone

if apps.apps_ready and not apps.is_installed("tenancy"):
    # Importing tenancy.models (a project's tenant model does) outside the installed
    # app would otherwise end in Django's "doesn't declare an explicit app_label", or
    # in tables that migrate never creates.
    raise ImproperlyConfigured(
        "'tenancy' is not in INSTALLED_APPS, but tenancy.models is imported (a tenant "
        "model derives from tenancy.models.AbstractTenant): add 'tenancy' to INSTALLED_APPS."
    )


class Tombstone(models.Model):
    """The durable intent to drop a deleted tenant's schema.

    Written in the transaction that deletes the tenant row, so a drop can
    never be lost between the delete and the worker (the reconciler re-sends
    tombstones that are not done). Done tombstones are kept: they remember
    the names of deleted tenants' schemas, which are never given again.
    """

    schema = models.CharField(max_length=63, db_index=True)
    database = models.CharField(max_length=100)
    #: The deleted tenant's incarnation: only storage carrying its ownership mark is
    #: dropped, never a schema of the same name that someone else made.
    incarnation = models.CharField(max_length=32, blank=True, default="")
    tenant_pk = models.CharField(max_length=64)
    tenant_repr = models.CharField(max_length=200, blank=True)
    deleted_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    done_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        app_label = "tenancy"
        ordering = ["deleted_at"]
        verbose_name = "tenant tombstone"

    def __str__(self) -> str:
        state = "dropped" if self.done_at else "pending drop"
        return f"{self.schema} on {self.database} ({state})"


class PoolSchema(models.Model):
    """A schema built ahead of time, at the current migrations, waiting for a signup.

    Provisioning renames one to the new tenant's schema in one short
    transaction; its name never looks like a tenant's.
    """

    name = models.CharField(max_length=63, unique=True)
    database = models.CharField(max_length=100, db_index=True)
    #: The token of the schema's ownership mark (``pool:<token>``).
    token = models.CharField(max_length=32, blank=True, default="")
    #: The migration plan digest the schema was built at; stale ones are never handed out.
    digest = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "tenancy"
        ordering = ["created_at"]
        verbose_name = "pooled schema"

    def __str__(self) -> str:
        return f"{self.name} on {self.database}"


class TenantOperation(models.Model):
    """A multi-step operation on one tenant's storage, recorded before it starts.

    Today: a move between databases (``tenancy_move``). ``step`` says how far
    it got; an operation that is not finished and whose tenant lock nobody
    holds was interrupted, and the reconciler finishes or undoes it.
    """

    class Kind(models.TextChoices):
        MOVE = "move", "move"

    class Step(models.TextChoices):
        STARTED = "started", "started"
        FROZEN = "frozen", "source read-only"
        COPIED = "copied", "copied to the target"
        SWITCHED = "switched", "switched to the target"
        DONE = "done", "done"
        UNDONE = "undone", "rolled back"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    tenant_pk = models.CharField(max_length=64)
    incarnation = models.CharField(max_length=32, db_index=True)
    schema = models.CharField(max_length=63)
    source = models.CharField(max_length=100)
    target = models.CharField(max_length=100)
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.STARTED)
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        app_label = "tenancy"
        ordering = ["started_at"]
        verbose_name = "tenant operation"

    def __str__(self) -> str:
        return f"{self.kind} of {self.schema} {self.source} -> {self.target} ({self.step})"


class RolloutRefusal(models.Model):
    """A worker's answer that it runs another version of the tenant migrations.

    ``tenancy_migrate`` sends the plan it expects with every batch; a worker
    with another plan migrates nothing and writes this row, and the rollout
    stops and names the workers to restart.
    """

    rollout = models.CharField(max_length=32, db_index=True)
    worker = models.CharField(max_length=200)
    #: The plan digest the worker runs (the rollout expected another).
    digest = models.CharField(max_length=32)
    tenants = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "tenancy"
        ordering = ["created_at"]
        verbose_name = "rollout refusal"

    def __str__(self) -> str:
        return f"{self.worker} runs plan {self.digest[:12]}"

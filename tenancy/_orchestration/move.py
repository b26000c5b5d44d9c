"""Move a tenant's schema to another database (PostgreSQL to PostgreSQL), durably.

The move is recorded (:class:`~tenancy.models.TenantOperation`) before it
touches anything, and each step it completes is written to that record:

1. ``started``: the record exists; nothing changed yet;
2. ``frozen``: the source schema is read-only (statement triggers refuse
   writes with a clear error; reads keep working);
3. ``copied``: the schema is built on the target from the current migration
   state, every row copied in one target transaction, counts verified and
   every sequence set to its exact source value (so an id of a row deleted
   before the move is never given again);
4. ``switched``: the tenant row points at the target, and a tombstone for the
   source schema is written, in one transaction;
5. ``done``: the source schema is dropped (by its tombstone).

The mover holds the tenant's lock throughout. A move whose record is not
finished and whose lock nobody holds was interrupted (the process died, its
connection dropped): :func:`recover`, run by the reconciler and by the next
``tenancy_move`` of the tenant, rolls it back when it stopped before the
switch (drops the target schema, which carries the tenant's mark, and makes
the source writable again) and finishes it after the switch.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from tenancy._classes import cache
from tenancy._migrating.plan import plan
from tenancy._migrating.recorder import RECORD_TABLE
from tenancy._orchestration import building, tombstones
from tenancy._orchestration.transitions import describe
from tenancy._primitives import (
    citus,
    conf,
    locks,
    ownership,
    placement,
    provisioning,
    shared,
    storage,
)
from tenancy._primitives.records import TenantOperation, Tombstone
from tenancy._primitives.states import READY, lock_key
from tenancy.exceptions import ForeignObject, MoveError

logger = logging.getLogger("tenancy.move")

Step = TenantOperation.Step

#: Tables that describe the schema rather than hold the tenant's data.
_NOT_COPIED = frozenset({RECORD_TABLE})
#: The trigger function that makes a schema read-only while it moves.
READ_ONLY_FUNCTION = "tenancy_read_only"


@dataclass
class MoveReport:
    """What a move did."""

    schema: str
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: What an earlier, interrupted move of the tenant was found in and made of.
    recovered: str = ""


def move_tenant(tenant: Any, target: str) -> MoveReport:
    """Move ``tenant``'s schema to the database ``target``; see the module docstring."""
    alias = shared.database()
    started = time.monotonic()
    with holding(tenant) as held:
        recovered = _recover_interrupted(tenant)
        tenant.refresh_from_db()
        source, schema = tenant.database, tenant.db_schema
        _check(tenant, source, target)
        op = TenantOperation.objects.using(alias).create(
            kind=TenantOperation.Kind.MOVE,
            tenant_pk=str(tenant.pk),
            incarnation=tenant.incarnation,
            schema=schema,
            source=source,
            target=target,
        )
        report = MoveReport(schema, source, target, recovered=recovered)
        try:
            owner = ownership.tenant_owner(tenant.incarnation)
            freeze(schema, source, owner)
            _step(op, Step.FROZEN)
            try:
                if not building.build(schema, target, owner):
                    raise MoveError(
                        f"Schema {schema} already exists on {target!r} (left by an earlier "
                        "attempt?); run `manage.py tenancy_reconcile`, then move again."
                    )
            except ForeignObject as exc:
                raise MoveError(str(exc)) from exc
            report.rows = _copy(schema, source, target)
            _step(op, Step.COPIED)
            held.ensure()
            _switch(tenant, op, target, alias)
        except BaseException as exc:
            _undo(op, error=describe(exc))
            raise
    cache.evict(schema)
    _finish(op)
    report.seconds = time.monotonic() - started
    logger.info("moved %s from %s to %s in %.1f s", schema, source, target, report.seconds)
    return report


def _check(tenant: Any, source: str, target: str) -> None:
    if target == source:
        raise MoveError(f"Tenant {tenant} is already on {target!r}.")
    placement.check(target)
    for alias in (source, target):
        if not storage.uses_schemas_alias(alias):
            raise MoveError(f"Moving tenants needs PostgreSQL on both sides; {alias!r} is not.")
        if citus.is_citus(alias):
            raise MoveError(
                f"{alias!r} is a Citus database: a move between databases freezes the "
                "schema with triggers, which Citus refuses on distributed tables. Within "
                "the cluster, move the tenant to another node instead (`manage.py "
                "tenancy_move KEY --node HOST:PORT`, online); to another cluster, copy the "
                "schema with pg_dump --schema."
            )
    check_movable(tenant, source, current_migrations=True)


@contextmanager
def holding(tenant: Any) -> Iterator[locks.Held]:
    """Hold ``tenant``'s lock for a move (no provisioning, migration or other move of
    it meanwhile); refuse a tenant without an incarnation, or one that is busy."""
    if not tenant.incarnation:
        raise MoveError(
            f"Tenant {tenant} has no incarnation (built by an earlier version of "
            "django-tenancy): run `manage.py tenancy_reconcile --adopt-legacy`, then move it."
        )
    with locks.hold(lock_key(tenant.incarnation), shared.database(), wait=conf.lock_wait()) as held:
        if held is None:
            raise MoveError(
                f"Tenant {tenant} is busy (being provisioned, migrated or moved); retry."
            )
        yield held


def check_movable(tenant: Any, alias: str, *, current_migrations: bool) -> None:
    """Refuse to move a tenant that is not ready (or, with ``current_migrations``, not at
    the current migrations), or whose schema on ``alias`` does not carry its mark."""
    if tenant.state != READY:
        raise MoveError(f"Tenant {tenant} is {tenant.state}; only ready tenants move.")
    if current_migrations and tenant.migrations_digest != plan().digest:
        raise MoveError(f"Tenant {tenant} is not at the current migrations; run tenancy_migrate.")
    owner = ownership.tenant_owner(tenant.incarnation)
    if not ownership.owns_schema(tenant.db_schema, alias, owner):
        raise MoveError(
            f"Schema {tenant.db_schema} on {alias!r} does not carry tenant {tenant}'s ownership "
            "mark; it is not moved. See `manage.py tenancy_reconcile --check`."
        )


# -- recovery of an interrupted move --


def interrupted(held_names: set[str] | None = None) -> list[TenantOperation]:
    """Return the unfinished moves whose tenant lock nobody holds (their mover is gone)."""
    alias = shared.database()
    unfinished = list(TenantOperation.objects.using(alias).filter(finished_at__isnull=True))
    names = [lock_key(op.incarnation) for op in unfinished]
    held = locks.held_among(names, alias) if held_names is None else held_names
    return [op for op in unfinished if lock_key(op.incarnation) not in held]


def recover(op: TenantOperation) -> str:
    """Finish or roll back an interrupted move (the caller knows nobody holds its tenant)."""
    op.refresh_from_db()
    if op.finished_at is not None:
        return "finished already"
    if op.step == Step.SWITCHED:
        _finish(op)
        logger.info("finished the interrupted move of %s to %s", op.schema, op.target)
        return f"finished the move to {op.target}"
    _undo(op, error=op.last_error or "interrupted (the moving process stopped)")
    logger.warning("rolled back the interrupted move of %s to %s", op.schema, op.target)
    return f"rolled back the move to {op.target} (the tenant stays on {op.source}, writable)"


def _recover_interrupted(tenant: Any) -> str:
    """Recover this tenant's interrupted moves (the caller holds the tenant's lock)."""
    done = [
        recover(op)
        for op in TenantOperation.objects.using(shared.database()).filter(
            incarnation=tenant.incarnation, finished_at__isnull=True
        )
    ]
    return "; ".join(done)


def _undo(op: TenantOperation, *, error: str) -> None:
    """Roll a move back to before its switch: drop the target's copy, thaw the source.

    Never drops the schema the tenant row points at: should the row name the
    target (a switch whose step was not recorded), the move is finished instead.
    """
    owner = ownership.tenant_owner(op.incarnation)
    database = (
        shared.tenants()
        .filter(incarnation=op.incarnation)
        .values_list("database", flat=True)
        .first()
    )
    if database == op.target:
        _finish(op)
        return
    provisioning.drop_schema(op.schema, op.target, owner)
    thaw(op.schema, op.source, owner)
    _step(op, Step.UNDONE, error=error, finished=True)


def _finish(op: TenantOperation) -> None:
    """After the switch: drop the source schema by its tombstone, and close the record."""
    undone = Tombstone.objects.using(shared.database()).filter(
        incarnation=op.incarnation, schema=op.schema, database=op.source, done_at__isnull=True
    )
    for pk in list(undone.values_list("pk", flat=True)):
        tombstones.drop(pk)
    _step(op, Step.DONE, finished=True)


def _step(op: TenantOperation, step: str, *, error: str = "", finished: bool = False) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {"step": step, "updated_at": now, "last_error": error}
    if finished:
        fields["finished_at"] = now
    TenantOperation.objects.using(shared.database()).filter(pk=op.pk).update(**fields)
    for name, value in fields.items():
        setattr(op, name, value)


# -- read-only while moving --


def freeze(schema: str, using: str, owner: str) -> None:
    """Make every table of ``owner``'s schema refuse writes (a statement trigger each).

    Idempotent: a freeze left by an interrupted move is replaced, not doubled.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    function = f"{quote(schema)}.{READ_ONLY_FUNCTION}()"
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if not ownership.owns_schema(schema, using, owner):
            raise MoveError(f"Schema {schema} on {using!r} is not the tenant's; it is not frozen.")
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {function} RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
            "'tenant schema % is read-only while it moves to another database; retry in a "
            "moment', TG_TABLE_SCHEMA USING ERRCODE = 'read_only_sql_transaction'; END $$"
        )
        for table in _tables(schema, using):
            cursor.execute(
                f"DROP TRIGGER IF EXISTS {READ_ONLY_FUNCTION} ON {quote(schema)}.{quote(table)}"
            )
            cursor.execute(
                f"CREATE TRIGGER {READ_ONLY_FUNCTION} BEFORE INSERT OR UPDATE OR DELETE OR "
                f"TRUNCATE ON {quote(schema)}.{quote(table)} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {function}"
            )


def thaw(schema: str, using: str, owner: str) -> None:
    """Undo :func:`freeze` (nothing to do if the schema is gone or not ``owner``'s)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if ownership.owns_schema(schema, using, owner):
            cursor.execute(
                f"DROP FUNCTION IF EXISTS {quote(schema)}.{READ_ONLY_FUNCTION}() CASCADE"
            )


# -- copy and verify --


def _tables(schema: str, using: str) -> list[str]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema]
        )
        return [row[0] for row in cursor.fetchall()]


def _columns(cursor: Any, schema: str, table: str) -> list[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position",
        [schema, table],
    )
    return [row[0] for row in cursor.fetchall()]


def _copy(schema: str, source: str, target: str) -> dict[str, int]:
    """Copy every row and sequence to the target in one transaction; return verified counts."""
    quote = connections[target].ops.quote_name
    counts: dict[str, int] = {}
    with (
        transaction.atomic(using=target),
        connections[source].cursor() as out,
        connections[target].cursor() as into,
    ):
        for table in _tables(schema, source):
            if table in _NOT_COPIED:
                continue
            name = f"{quote(schema)}.{quote(table)}"
            columns = ", ".join(quote(c) for c in _columns(out, schema, table))
            buffer = io.BytesIO()
            _copy_out(out.cursor, f"COPY {name} ({columns}) TO STDOUT", buffer)
            buffer.seek(0)
            _copy_in(into.cursor, f"COPY {name} ({columns}) FROM STDIN", buffer)
            counts[table] = _verify(out, into, name)
        _copy_sequences(out, into, schema, quote)
    return counts


def _copy_out(raw: Any, sql: str, buffer: io.BytesIO) -> None:
    """Run ``COPY ... TO STDOUT`` on the driver's cursor ``raw`` into ``buffer``."""
    if hasattr(raw, "copy_expert"):  # psycopg2
        raw.copy_expert(sql, buffer)
        return
    with raw.copy(sql) as copy:  # psycopg 3
        for data in copy:
            buffer.write(data)


def _copy_in(raw: Any, sql: str, buffer: io.BytesIO) -> None:
    """Run ``COPY ... FROM STDIN`` on the driver's cursor ``raw`` from ``buffer``."""
    if hasattr(raw, "copy_expert"):  # psycopg2
        raw.copy_expert(sql, buffer)
        return
    with raw.copy(sql) as copy:  # psycopg 3
        while data := buffer.read(1 << 16):
            copy.write(data)


def _copy_sequences(out: Any, into: Any, schema: str, quote: Any) -> None:
    """Set every sequence of the target schema exactly where the source's stands."""
    out.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'S' ORDER BY c.relname",
        [schema],
    )
    for (sequence,) in out.fetchall():
        qualified = f"{quote(schema)}.{quote(sequence)}"
        out.execute(f"SELECT last_value, is_called FROM {qualified}")
        last_value, is_called = out.fetchone()
        into.execute("SELECT setval(%s::regclass, %s, %s)", [qualified, last_value, is_called])


def _verify(out: Any, into: Any, name: str) -> int:
    out.execute(f"SELECT count(*) FROM {name}")
    expected = out.fetchone()[0]
    into.execute(f"SELECT count(*) FROM {name}")
    copied = into.fetchone()[0]
    if copied != expected:
        raise MoveError(f"{name}: {copied} rows copied of {expected}; the move is undone.")
    return int(copied)


def _switch(tenant: Any, op: TenantOperation, target: str, alias: str) -> None:
    """Point the tenant at ``target`` and, in the same transaction, leave a tombstone for the
    source schema and record the step: a crash after the switch cannot orphan it."""
    with transaction.atomic(using=alias):
        updated = (
            type(tenant)
            ._default_manager.using(alias)
            .filter(pk=tenant.pk, incarnation=tenant.incarnation, database=op.source)
            .update(database=target)
        )
        if not updated:
            raise MoveError(f"Tenant {tenant} changed while moving; the move is undone.")
        tombstones.write(tenant, alias)
        _step(op, Step.SWITCHED)
    tenant.database = target

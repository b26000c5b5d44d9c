"""Move a tenant's schema to another database (PostgreSQL to PostgreSQL).

While it moves, the tenant is read-only: triggers on its tables refuse
writes with a clear error, reads keep working. The schema is built on the
target from the current migration state, the rows are copied in one target
transaction and verified (row counts per table), then the tenant row's
``database`` is switched. The old schema is dropped only after the switch
committed; any failure before it leaves the tenant where it was, writable,
and removes what was built on the target.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction

from tenancy import cache, conf, lifecycle, locks, migrator, placement, provisioning, storage
from tenancy.exceptions import TenancyError
from tenancy.models import AbstractTenant, TenantState, Tombstone

logger = logging.getLogger("tenancy.move")

#: Tables that describe the schema rather than hold the tenant's data.
_NOT_COPIED = frozenset({migrator.RECORD_TABLE})


class MoveError(TenancyError, RuntimeError):
    """A tenant could not be moved; it stays where it was."""


@dataclass
class MoveReport:
    """What a move did."""

    schema: str
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def move_tenant(tenant: AbstractTenant, target: str) -> MoveReport:
    """Move ``tenant``'s schema to the database ``target``; see the module docstring."""
    source, schema = tenant.database, tenant.db_schema
    _check(tenant, source, target)
    shared = lifecycle.shared_database()
    started = time.monotonic()
    with locks.tenant_lock(schema, shared, wait=conf.lock_wait()) as acquired:
        if not acquired:
            raise MoveError(f"Tenant {tenant} is busy (being provisioned or migrated); retry.")
        report = MoveReport(schema, source, target)
        freeze(schema, source)
        try:
            if storage.schema_exists(schema, target):
                raise MoveError(
                    f"Schema {schema} already exists on {target!r}; drop it there first."
                )
            provisioning.provision(schema, target)
            try:
                report.rows = _copy(schema, source, target)
                tomb = _switch(tenant, target, shared)
            except BaseException:
                provisioning.drop(schema, target)
                raise
        except BaseException:
            thaw(schema, source)
            raise
    cache.evict(schema)
    lifecycle.drop_tombstone(tomb.pk)  # the old schema, by its oid
    report.seconds = time.monotonic() - started
    logger.info("moved %s from %s to %s in %.1f s", schema, source, target, report.seconds)
    return report


def _check(tenant: AbstractTenant, source: str, target: str) -> None:
    if target == source:
        raise MoveError(f"Tenant {tenant} is already on {target!r}.")
    placement.check(target)
    for alias in (source, target):
        if not storage.uses_schemas_alias(alias):
            raise MoveError(f"Moving tenants needs PostgreSQL on both sides; {alias!r} is not.")
    if tenant.state != TenantState.READY:
        raise MoveError(f"Tenant {tenant} is {tenant.state}; only ready tenants move.")
    if tenant.migrations_digest != migrator.plan().digest:
        raise MoveError(f"Tenant {tenant} is not at the current migrations; run tenancy_migrate.")


# -- read-only while moving --


def freeze(schema: str, using: str) -> None:
    """Make every table of the schema refuse writes (a statement trigger each)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {quote(schema)}.tenancy_read_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
            "'tenant schema % is read-only while it moves to another database; retry in a "
            "moment', TG_TABLE_SCHEMA USING ERRCODE = 'read_only_sql_transaction'; END $$"
        )
        for table in _tables(schema, using):
            cursor.execute(
                f"CREATE TRIGGER tenancy_read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {quote(schema)}.{quote(table)} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {quote(schema)}.tenancy_read_only()"
            )


def thaw(schema: str, using: str) -> None:
    """Undo :func:`freeze`."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION IF EXISTS {quote(schema)}.tenancy_read_only() CASCADE")


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
    """Copy every row to the target in one transaction; return the verified counts."""
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
            out.cursor.copy_expert(f"COPY {name} ({columns}) TO STDOUT", buffer)
            buffer.seek(0)
            into.cursor.copy_expert(f"COPY {name} ({columns}) FROM STDIN", buffer)
            _reset_sequences(into, schema, table)
            counts[table] = _verify(out, into, name)
    return counts


def _verify(out: Any, into: Any, name: str) -> int:
    out.execute(f"SELECT count(*) FROM {name}")
    expected = out.fetchone()[0]
    into.execute(f"SELECT count(*) FROM {name}")
    copied = into.fetchone()[0]
    if copied != expected:
        raise MoveError(f"{name}: {copied} rows copied of {expected}; the move is undone.")
    return int(copied)


def _reset_sequences(cursor: Any, schema: str, table: str) -> None:
    qualified = f'"{schema}"."{table}"'
    for column in _columns(cursor, schema, table):
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [qualified, column])
        sequence = cursor.fetchone()[0]
        if sequence:
            cursor.execute(
                f'SELECT setval(%s, COALESCE(MAX("{column}"), 1), MAX("{column}") IS NOT NULL) '
                f"FROM {qualified}",
                [sequence],
            )


def _switch(tenant: AbstractTenant, target: str, shared: str) -> Tombstone:
    """Point the tenant at ``target`` and, in the same transaction, leave a tombstone
    for the old schema: a crash after the switch cannot orphan it."""
    with transaction.atomic(using=shared):
        updated = (
            type(tenant)
            ._default_manager.using(shared)
            .filter(pk=tenant.pk, database=tenant.database)
            .update(database=target)
        )
        if not updated:
            raise MoveError(f"Tenant {tenant} changed while moving; the move is undone.")
        tomb = lifecycle.write_tombstone(tenant, shared)
    tenant.database = target
    assert tomb is not None
    return tomb

"""Give a new tenant a schema name that nothing else has, checked under a lock.

:func:`tenancy._primitives.naming.schema_name_for` derives the preferred name
from the natural key without looking at any database. Before the tenant row is
written, :func:`allocate` checks that the name is free, holding the name's
lock in the saving transaction (so a concurrent signup waits, then sees the
name taken), and routes around a taken name with a random 64-bit suffix.

A name is taken when any of these has it:

- a tenant row (a tenant renamed since keeps its schema name) or a tombstone
  (a deleted tenant's name is never given again, so nothing of a deleted
  tenant, not even a stale instance cached in some process, can reach the
  tables of a tenant signed up again under the same key);
- a pooled schema;
- where the tenant's schema goes on the shared database: any schema there, any
  role of the cluster (the connecting role's name would be its ``$user``
  schema, first on its ``search_path``), or a name on the connection's
  ``search_path``; on SQLite, any table prefixed with the name.

A tenant placed on another database is not checked there at signup: a signup
never waits for (or fails on) a second database server. Should that database
hold a schema or role of the name that the library did not build, the
provisioning refuses it, and the tenant ends ``failed`` with an error naming it.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.db import connections, transaction

from tenancy._primitives import locks, naming, placement, shared, storage
from tenancy._primitives.records import PoolSchema, Tombstone
from tenancy.exceptions import TenancyError

#: Random names tried after the preferred one (each is 64 random bits: one suffices).
ATTEMPTS = 8


def new_incarnation() -> str:
    """Return a new incarnation id: what a tenant's storage is marked with."""
    return uuid.uuid4().hex


def name_new(tenant: Any) -> None:
    """Name a tenant about to be inserted: its database, schema and incarnation.

    Values already set are kept (a caller may place the tenant, or give it a
    schema it built itself). Must run in a transaction on the shared database,
    which the name's lock lasts until. Raises ``InvalidTenantKey`` for a key
    that names no schema, ``PlacementError`` for a database that holds no tenants.
    """
    if tenant.database:
        placement.check(tenant.database)
    else:
        tenant.database = placement.choose(tenant)
    if not tenant.db_schema:
        tenant.db_schema = allocate(tenant.derive_schema(), tenant.database)
    if not tenant.incarnation:
        tenant.incarnation = new_incarnation()


def name_stored(tenant: Any) -> None:
    """Name a tenant row written without ``save()`` (``bulk_create()``, raw SQL).

    The first naming written wins: a concurrent caller's is read back into
    ``tenant``. Raises ``InvalidTenantKey`` for a key that names no schema.
    """
    alias = shared.database()
    rows = type(tenant)._default_manager.using(alias).filter(pk=tenant.pk)
    with transaction.atomic(using=alias):
        name_new(tenant)
        rows.filter(incarnation__isnull=True).update(
            db_schema=tenant.db_schema, database=tenant.database, incarnation=tenant.incarnation
        )
    stored = rows.values_list("db_schema", "database", "incarnation").first()
    if stored is not None:
        tenant.db_schema, tenant.database, tenant.incarnation = stored


def allocate(preferred: str, database: str) -> str:
    """Return ``preferred`` if it is free, else a free name derived from it.

    Must run in a transaction on the shared database: the name's lock is
    held until that transaction ends, when the tenant row is written.
    """
    candidate = preferred
    for _ in range(ATTEMPTS):
        if is_free(candidate, database):
            return candidate
        candidate = naming.with_suffix(preferred, secrets.token_hex(naming.HASH_LENGTH // 2))
    raise TenancyError(f"No free schema name derived from {preferred!r} after {ATTEMPTS} tries.")


def is_free(name: str, database: str) -> bool:
    """Return whether no tenant, tombstone, pooled schema, schema or role has ``name``.

    Takes the name's lock in the current transaction on the shared database.
    """
    alias = shared.database()
    connection = connections[alias]
    checks = [_in_bookkeeping()]
    params: list[str] = [name, name, name]
    schemas = storage.uses_schemas(connection)
    if schemas and database == alias:
        checks.append(_IN_CATALOG)
        params += [name, name, name]
    with connection.cursor() as cursor:
        if schemas:
            locks.queue_for(cursor, f"schema-name:{name}")
        cursor.execute(f"SELECT {' OR '.join(checks)}", params)
        if cursor.fetchone()[0]:
            return False
    if not schemas and database == alias:
        return not storage.prefixed_tables(name, alias)
    return True


#: Whether a schema or role has the name, or the connection's search_path names it.
_IN_CATALOG = (
    "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s) "
    "OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) "
    "OR %s = ANY (string_to_array(replace(replace(current_setting('search_path'), "
    "'\"', ''), ' ', ''), ','))"
)


def _in_bookkeeping() -> str:
    tenants = shared.tenant_model()._meta.db_table
    quote = connections[shared.database()].ops.quote_name
    return (
        f"EXISTS (SELECT 1 FROM {quote(tenants)} WHERE db_schema = %s) "
        f"OR EXISTS (SELECT 1 FROM {quote(Tombstone._meta.db_table)} WHERE {quote('schema')} = %s) "
        f"OR EXISTS (SELECT 1 FROM {quote(PoolSchema._meta.db_table)} WHERE {quote('name')} = %s)"
    )

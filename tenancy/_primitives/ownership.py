"""Marks that say which tenant incarnation (or pooled schema) owns a schema or a role.

The library only drops, renames, alters, grants on or adopts what carries its
mark, and only for the owner the mark names: a schema of the same name made by
someone else, or left by a deleted tenant, is never taken for the tenant's own.

- PostgreSQL: the mark is the object's comment (``COMMENT ON SCHEMA`` /
  ``COMMENT ON ROLE``): in the catalog, written in the transaction that creates
  the object, carried by ``pg_dump`` and readable in one catalog query.
- Other backends (SQLite): tables are prefixed instead of schemas, and the
  mark is one more prefixed table, ``<prefix>__tenancy_owner``, holding the
  owner, created with the tenant's tables.

An owner is ``tenant:<incarnation>`` or ``pool:<token>``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from django.db import connections

from tenancy._primitives import storage
from tenancy.exceptions import ForeignObject

#: Start of every mark the library writes.
MARK = "django-tenancy owner="
#: The prefixed table that holds the mark on backends without schemas.
OWNER_TABLE = "tenancy_owner"

_OWNER = re.compile(r"^(tenant|pool):[0-9a-f]{32}$")


class Found(NamedTuple):
    """What stands under a name: whether something exists, and whose mark it carries."""

    exists: bool
    owner: str | None = None


ABSENT = Found(False)


def tenant_owner(incarnation: str) -> str:
    """Return the owner of a tenant incarnation's storage."""
    return _checked(f"tenant:{incarnation}")


def pool_owner(token: str) -> str:
    """Return the owner of a pooled schema (built ahead of a signup)."""
    return _checked(f"pool:{token}")


def schema_owner(schema: str, using: str) -> Found:
    """Return whether the schema (or prefixed tables) ``schema`` exists, and its owner."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            cursor.execute(
                "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
                [schema],
            )
            row = cursor.fetchone()
            return ABSENT if row is None else Found(True, _parse(row[0]))
    tables = storage.prefixed_tables(schema, using)
    if not tables:
        return ABSENT
    table = storage.table_name(schema, OWNER_TABLE, using)
    if table not in tables:
        return Found(True)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT owner FROM {connection.ops.quote_name(table)}")
        row = cursor.fetchone()
    return Found(True, row[0] if row else None)


def mark_schema(schema: str, using: str, owner: str) -> None:
    """Write ``owner``'s mark on the schema (or prefix), in the current transaction."""
    owner = _checked(owner)
    connection = connections[using]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            cursor.execute(f"COMMENT ON SCHEMA {quote(schema)} IS '{MARK}{owner}'")
            return
        table = quote(storage.table_name(schema, OWNER_TABLE, using))
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (owner varchar(64) NOT NULL)")
        cursor.execute(f"DELETE FROM {table}")
        cursor.execute(f"INSERT INTO {table} (owner) VALUES (%s)", [owner])


def role_owner(role: str, using: str) -> Found:
    """Return whether the role ``role`` exists (PostgreSQL), and its owner."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
            [role],
        )
        row = cursor.fetchone()
    return ABSENT if row is None else Found(True, _parse(row[0]))


def mark_role(role: str, using: str, owner: str) -> None:
    """Write ``owner``'s mark on the role, in the current transaction."""
    owner = _checked(owner)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"COMMENT ON ROLE {connection.ops.quote_name(role)} IS '{MARK}{owner}'")


def claim_schema(schema: str, using: str, owner: str) -> bool:
    """Return True if ``owner``'s schema stands under the name, False if nothing does.

    Raises :class:`ForeignObject` naming the schema when something else does.
    """
    found = schema_owner(schema, using)
    if not found.exists:
        return False
    if found.owner != owner:
        raise ForeignObject(_kind(using), schema, using, found.owner)
    return True


def claim_role(role: str, using: str, owner: str) -> bool:
    """Return True if ``owner``'s role exists, False if no role has the name.

    Raises :class:`ForeignObject` naming the role when someone else's does.
    """
    found = role_owner(role, using)
    if not found.exists:
        return False
    if found.owner != owner:
        raise ForeignObject("role", role, using, found.owner)
    return True


def owns_schema(schema: str, using: str, owner: str) -> bool:
    """Return whether the schema exists and carries ``owner``'s mark."""
    found = schema_owner(schema, using)
    return found.exists and found.owner == owner


def _parse(comment: str | None) -> str | None:
    if not comment or not comment.startswith(MARK):
        return None
    owner = comment[len(MARK) :].strip()
    return owner if _OWNER.match(owner) else None


def _checked(owner: str) -> str:
    if not _OWNER.match(owner):
        raise ValueError(f"not an owner: {owner!r}")
    return owner


def _kind(using: str) -> str:
    return "schema" if storage.uses_schemas_alias(using) else "table prefix"

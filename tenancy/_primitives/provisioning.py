"""Create, rename and drop a tenant's schema and role, only ever the owner's own.

Synchronous primitives that know nothing of tenants' lifecycles: each takes a
schema name, a database alias and an owner (see
:mod:`tenancy._primitives.ownership`). Creating marks what it creates; every
destructive or altering step first checks the mark, inside the transaction
that acts, and leaves anything that is not the owner's alone (or raises
:class:`~tenancy.exceptions.ForeignObject` naming it, where the caller needs
the name). The tables inside a schema are built by the migrating layer.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connections, transaction

from tenancy._primitives import conf, locks, ownership, storage
from tenancy._primitives.ddl import tenant_schema_editor
from tenancy.exceptions import ForeignObject

#: How long a drop waits for a lock before giving way (milliseconds).
DROP_LOCK_TIMEOUT_MS = 2000


def create_schema(schema: str, using: str, owner: str) -> bool:
    """Create the schema (or mark the table prefix) for ``owner``, in the current transaction.

    Returns False, creating nothing, when ``owner``'s schema already stands
    (a retry finishing an interrupted build); raises :class:`ForeignObject`
    when anything else has the name: a schema, or (PostgreSQL) a role that is
    not ``owner``'s.
    """
    connection = connections[using]
    if storage.uses_schemas(connection):
        with connection.cursor() as cursor:
            # Two builders of one name queue here instead of racing.
            locks.queue_for(cursor, f"schema:{schema}")
    if ownership.claim_schema(schema, using, owner):
        return False
    if storage.uses_schemas(connection):
        # A role of that name would find the schema first on its search_path ($user):
        # a schema is never named after someone else's role, on any database.
        ownership.claim_role(schema, using, owner)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(schema)}")
    ownership.mark_schema(schema, using, owner)
    return True


def rename_schema(old: str, new: str, using: str, old_owner: str, new_owner: str) -> bool:
    """Rename ``old_owner``'s schema to ``new`` and give it to ``new_owner`` (PostgreSQL).

    In the current transaction. Returns False when ``old`` is not
    ``old_owner``'s (gone, or never ours); raises :class:`ForeignObject` when
    something else already has the name ``new``.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        locks.queue_for(cursor, f"schema:{new}")
        locks.queue_for(cursor, f"schema:{old}")
    if ownership.claim_schema(new, using, new_owner):
        raise ForeignObject("schema", new, using, new_owner)  # two claims of one tenant
    if not ownership.owns_schema(old, using, old_owner):
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER SCHEMA {quote(old)} RENAME TO {quote(new)}")
    ownership.mark_schema(new, using, new_owner)
    return True


def authorize(schema: str, using: str, owner: str) -> None:
    """Give ``owner``'s schema a role of its own, with rights on its tables only (PostgreSQL).

    A session that does ``SET ROLE <schema>`` can then read and write this
    tenant's tables and no other tenant's. The role is created (and marked)
    unless ``owner``'s stands; a role of that name that is not ``owner``'s
    raises :class:`ForeignObject` and is never granted anything.
    """
    connection = connections[using]
    role = connection.ops.quote_name(schema)
    if not ownership.owns_schema(schema, using, owner):
        raise ForeignObject("schema", schema, using, ownership.schema_owner(schema, using).owner)
    with connection.cursor() as cursor:
        if not ownership.claim_role(schema, using, owner):
            cursor.execute(f"CREATE ROLE {role} NOLOGIN")
            ownership.mark_role(schema, using, owner)
            cursor.execute(f"GRANT {role} TO CURRENT_USER")
        cursor.execute(f"ALTER SCHEMA {role} OWNER TO {role}")
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {role} TO {role}")
        cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {role} TO {role}")


def drop_schema(schema: str, using: str, owner: str) -> bool:
    """Drop ``owner``'s schema (or prefixed tables) with all its data, and its role.

    Returns False, dropping nothing, when the name holds nothing or something
    that is not ``owner``'s. A big schema's tables go a batch per transaction
    first; interrupted, the next drop goes on where this one stopped.
    """
    connection = connections[using]
    if not ownership.owns_schema(schema, using, owner):
        return False
    if not storage.uses_schemas(connection):
        tables = storage.prefixed_tables(schema, using)
        with tenant_schema_editor(connection) as editor:
            for table in tables:
                editor.execute(f"DROP TABLE {connection.ops.quote_name(table)}")
        return True
    quote = connection.ops.quote_name
    while _drop_a_batch(schema, using, owner):
        pass
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if not _still_owned(cursor, schema, using, owner):
            return False
        cursor.execute(f"DROP SCHEMA {quote(schema)} CASCADE")
        _drop_role(cursor, schema, using, owner)
    return True


def _drop_a_batch(schema: str, using: str, owner: str) -> bool:
    """Drop one batch of tables of a big schema; return whether more may follow.

    ``DROP SCHEMA ... CASCADE`` locks every table, index and sequence in one
    transaction; hundreds of tables can exhaust ``max_locks_per_transaction``
    and hold other tenants' work.
    """
    connection = connections[using]
    batch = max(1, conf.drop_batch())
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename LIMIT %s",
            [schema, batch + 1],
        )
        tables = [row[0] for row in cursor.fetchall()]
        if len(tables) <= batch or not _still_owned(cursor, schema, using, owner):
            return False  # small enough for the schema drop itself
        names = ", ".join(f"{quote(schema)}.{quote(t)}" for t in tables[:batch])
        cursor.execute(f"DROP TABLE IF EXISTS {names} CASCADE")
    return True


def _still_owned(cursor: Any, schema: str, using: str, owner: str) -> bool:
    """Lock the name and check the mark again, in the dropping transaction."""
    locks.queue_for(cursor, f"schema:{schema}")
    _give_way(cursor)
    return ownership.owns_schema(schema, using, owner)


def _give_way(cursor: Any) -> None:
    """Fail fast instead of queueing for a lock: dropping a tenant table locks the
    shared tables its foreign keys point at, and a drop waiting for them would
    make every other tenant's writes to those tables wait behind it. The drop
    task retries (lock timeouts are transient)."""
    cursor.execute("SET LOCAL lock_timeout = %s", [f"{DROP_LOCK_TIMEOUT_MS}ms"])


def _drop_role(cursor: Any, role: str, using: str, owner: str) -> None:
    """Drop ``owner``'s role of the schema, if there is one (and only ``owner``'s)."""
    found = ownership.role_owner(role, using)
    if not found.exists or found.owner != owner:
        return
    # Another database of the cluster may still use the role: keep it then.
    cursor.execute("SAVEPOINT tenancy_role")
    try:
        cursor.execute(f"DROP ROLE {connections[using].ops.quote_name(role)}")
    except DatabaseError:
        cursor.execute("ROLLBACK TO SAVEPOINT tenancy_role")

"""Citus: whether a database is a Citus coordinator, and what Citus says about a schema.

With ``citus.enable_schema_based_sharding = on``, every schema created on a
Citus coordinator becomes a *distributed schema*: its tables are single-shard
tables placed together on one node. That is one tenant per schema, so the
library's storage needs no change there; what differs is how DDL may be sent
(one statement per query: Citus forwards a ``CREATE INDEX`` or ``ALTER TABLE``
to the worker with the query string it was given, and the worker refuses a
string of several), which shared tables tenant tables may reference
(reference tables only), and how a schema moves (``citus_schema_move()``).

Whether an alias is Citus comes from ``TENANCY_CITUS`` when set (a bool, or a
list of aliases), else from the ``citus`` extension being installed in the
database, asked once per alias and process.
"""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings
from django.db import connections

from tenancy._primitives import storage

_detected: dict[tuple[str, str, str, str], bool] = {}


class Placement(NamedTuple):
    """Where Citus keeps a distributed schema's tables."""

    node: str
    port: int
    size: int


def is_citus(using: str) -> bool:
    """Return whether the database ``using`` is a Citus coordinator."""
    connection = connections[using]
    if not storage.uses_schemas(connection):
        return False
    configured = getattr(settings, "TENANCY_CITUS", None)
    if isinstance(configured, bool):
        return configured
    if isinstance(configured, (list, tuple, set, frozenset)):
        return using in configured
    params = connection.settings_dict
    key = (using, str(params.get("HOST")), str(params.get("PORT")), str(params.get("NAME")))
    found = _detected.get(key)
    if found is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
            found = cursor.fetchone() is not None
        _detected[key] = found
    return found


def distributed_schemas(using: str) -> set[str]:
    """Return the names of the distributed schemas of ``using``."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT schema_name::text FROM citus_schemas")
        return {row[0] for row in cursor.fetchall()}


def placements(schemas: list[str], using: str) -> dict[str, Placement]:
    """Return the node and total size of each distributed schema among ``schemas``.

    A schema without tables yet has no shard and so no node: it is left out.
    """
    if not schemas:
        return {}
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT s.schema_name::text, min(sh.nodename), min(sh.nodeport), "
            "coalesce(sum(sh.shard_size), 0) "
            "FROM citus_schemas s JOIN citus_shards sh "
            "ON sh.colocation_id = s.colocation_id "
            "WHERE s.schema_name::text = ANY(%s) GROUP BY 1",
            [list(schemas)],
        )
        return {name: Placement(node, int(port), int(size)) for name, node, port, size in cursor}


def worker_nodes(using: str) -> list[tuple[str, int]]:
    """Return the active worker nodes (host, port) registered on ``using``."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT node_name::text, node_port FROM citus_get_active_worker_nodes() ORDER BY 1, 2"
        )
        return [(host, int(port)) for host, port in cursor.fetchall()]


def move_schema(schema: str, host: str, port: int, using: str, *, block_writes: bool) -> None:
    """Move a distributed schema's tables to the node ``host:port``.

    Online (``block_writes=False``), ``citus_schema_move()`` copies with
    logical replication while reads and writes go on, then switches in a
    short lock; with ``block_writes`` it refuses writes to the schema while it
    copies. It must run outside a transaction block.
    """
    mode = "block_writes" if block_writes else "auto"
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT citus_schema_move(%s::regnamespace, %s, %s, %s::citus.shard_transfer_mode)",
            [schema, host, port, mode],
        )


def asynchronous_commit_nodes(using: str) -> list[str]:
    """Return the nodes (``host:port``) whose connections commit with
    ``synchronous_commit = off``, as Citus's own connections to them see it.

    An online move there can lose writes: with Citus 13.2, rows committed on
    such a node while ``citus_schema_move()`` switches over were missing from
    the moved schema (a few of every few thousand in our tests), since the
    replication catch-up does not wait for WAL that is not flushed yet.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT nodename::text, nodeport, result FROM "
            "run_command_on_workers($$SHOW synchronous_commit$$) WHERE success"
        )
        return [f"{host}:{port}" for host, port, result in cursor.fetchall() if result == "off"]


def non_reference_tables(tables: list[str], using: str) -> list[str]:
    """Return those of ``tables`` (names on the search path) that exist on ``using``
    and are not reference tables, in the order given: one query for them all."""
    if not tables:
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname::text FROM pg_class c "
            "LEFT JOIN citus_tables p ON p.table_name = c.oid "
            "WHERE c.relname::text = ANY(%s) AND c.relkind IN ('r', 'p') "
            "AND pg_table_is_visible(c.oid) "
            "AND p.citus_table_type IS DISTINCT FROM 'reference'",
            [list(tables)],
        )
        found = {row[0] for row in cursor.fetchall()}
    return [table for table in tables if table in found]


def reference_table_sql(table: str) -> str:
    """Return the SQL that makes the shared table ``table`` a reference table."""
    identifier = '"' + table.replace('"', '""') + '"'
    literal = "'" + identifier.replace("'", "''") + "'"
    return f"SELECT create_reference_table({literal});"

"""Move a tenant to another node of its Citus cluster: ``citus_schema_move()``, online.

On Citus a tenant's schema is a distributed schema whose tables sit together
on one node. Citus moves them with logical replication while the tenant's
reads and writes go on, and switches over in a short lock; its own cleanup
records remove what a move that died half-way left on the target node, and
the schema stays where it was. So the library adds no move record of its own:
it holds the tenant's lock (no provisioning, migration or drop meanwhile),
checks the schema is the tenant's, and names the node it ends up on.

The tenant's ``database`` field does not change: it names the Citus
coordinator, which routes every query to the node holding the schema.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from tenancy._orchestration.move import check_movable, holding
from tenancy._primitives import citus
from tenancy.exceptions import MoveError

logger = logging.getLogger("tenancy.move")


@dataclass
class NodeMoveReport:
    """What a move between Citus nodes did."""

    schema: str
    database: str
    source: str
    target: str
    size: int
    seconds: float
    online: bool


def parse_node(node: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``HOST:PORT``; raise :class:`MoveError` for anything else."""
    host, sep, port = node.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise MoveError(
            f"A Citus node is HOST:PORT, as citus_get_active_worker_nodes() lists it, not {node!r}."
        )
    return host, int(port)


def move_to_node(tenant: Any, node: str, *, block_writes: bool = False) -> NodeMoveReport:
    """Move ``tenant``'s schema to the Citus node ``node`` (``HOST:PORT``).

    Online by default: reads and writes go on while it moves. A node whose
    commits are asynchronous (``synchronous_commit = off``) can lose writes
    made during an online move's switch-over, so there the move is refused
    unless ``block_writes`` asks for a move that refuses the tenant's writes
    while it copies (safe whatever the setting, and fast for a small tenant).
    """
    host, port = parse_node(node)
    alias = tenant.database
    if not citus.is_citus(alias):
        raise MoveError(
            f"Tenant {tenant}'s database {alias!r} is not a Citus coordinator; --node "
            "moves a tenant between the nodes of a Citus cluster. Between databases, "
            "name the target alias instead."
        )
    started = time.monotonic()
    with holding(tenant):
        tenant.refresh_from_db()
        schema = tenant.db_schema
        # Citus moves the tables as they are: the migrations need not be current.
        check_movable(tenant, alias, current_migrations=False)
        nodes = citus.worker_nodes(alias)
        if (host, port) not in nodes:
            known = ", ".join(f"{h}:{p}" for h, p in nodes) or "none"
            raise MoveError(f"{node} is not an active worker node of {alias!r} (active: {known}).")
        before = citus.placements([schema], alias).get(schema)
        if before is None:
            raise MoveError(
                f"Schema {schema} is not a distributed schema with tables on {alias!r}."
            )
        source = f"{before.node}:{before.port}"
        if (before.node, before.port) == (host, port):
            raise MoveError(f"Tenant {tenant} is already on {node}.")
        if not block_writes and (unsafe := citus.asynchronous_commit_nodes(alias)):
            raise MoveError(
                f"synchronous_commit is off on {', '.join(unsafe)}: writes committed while "
                "an online move switches over can be lost there. Set synchronous_commit = "
                "on for the nodes (ALTER SYSTEM SET synchronous_commit = on; SELECT "
                "pg_reload_conf(); on each), or move with --block-writes (the tenant's "
                "writes wait while it copies)."
            )
        citus.move_schema(schema, host, port, alias, block_writes=block_writes)
    seconds = time.monotonic() - started
    logger.info("moved %s from node %s to %s in %.1f s", schema, source, node, seconds)
    return NodeMoveReport(schema, alias, source, node, before.size, seconds, not block_writes)

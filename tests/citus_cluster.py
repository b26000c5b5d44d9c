"""Prepare an existing Citus cluster for the suite: ``python -m tests.citus_cluster``.

``make test-citus`` runs it before the suite when ``TENANCY_TEST_CITUS=host:port``
names a Citus coordinator (tested with Citus 13.2 on PostgreSQL 15, schema-based
sharding). It never builds or installs Citus; it prepares databases on a
cluster that runs already:

1. reads the coordinator's worker nodes from its maintenance database
   (``TENANCY_TEST_CITUS_DB``, default ``postgres``), where they are registered;
2. for each test database (``TENANCY_PG_TEST_NAME``, ``TENANCY_PG_OTHER_TEST_NAME``):
   drops and creates it on the coordinator and on every worker, creates the
   ``citus`` extension in each, turns schema-based sharding and synchronous
   commits on for it and
   registers the coordinator and the workers in it (Citus keeps nodes per
   database);
3. migrates the shared tables (``django-admin migrate``, both databases) and
   makes the shared tables that tenant tables reference reference tables
   (``django-admin tenancy_reference_tables``).

The suite then runs with ``--reuse-db`` on those databases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from benchmarks.services import pg_connect

USER = os.environ.get("PGUSER", "postgres")
MAINTENANCE_DB = os.environ.get("TENANCY_TEST_CITUS_DB", "postgres")
DEFAULT_NAME = "test_tenancy_citus"
OTHER_NAME = "test_tenancy_citus_other"


def coordinator() -> tuple[str, int]:
    """Return the coordinator named by ``TENANCY_TEST_CITUS`` (``host:port``)."""
    value = os.environ.get("TENANCY_TEST_CITUS", "")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SystemExit(
            f"TENANCY_TEST_CITUS must be host:port of a Citus coordinator, not {value!r}."
        )
    return host, int(port)


def connect(host: str, port: int, dbname: str) -> Any:
    """Return an autocommit connection of the installed driver to one node."""
    conn = pg_connect(dbname, host=host, port=port, user=USER)
    conn.autocommit = True
    return conn


def run(conn: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def workers(host: str, port: int) -> list[tuple[str, int]]:
    """Return the active worker nodes the coordinator's maintenance database registers."""
    conn = connect(host, port, MAINTENANCE_DB)
    try:
        rows = run(conn, "SELECT node_name, node_port FROM citus_get_active_worker_nodes()")
    finally:
        conn.close()
    if not rows:
        raise SystemExit(
            f"The coordinator {host}:{port} has no active worker nodes in its database "
            f"{MAINTENANCE_DB!r}: register them with citus_add_node() there first."
        )
    return sorted((str(h), int(p)) for h, p in rows)


def on_workers(conn: Any, nodes: list[tuple[str, int]], command: str) -> None:
    """Run ``command`` on every node of ``nodes``, through the coordinator connection
    ``conn``, in the database ``conn`` is connected to: the coordinator reaches the
    workers by the names it registered them under, which this machine may not resolve
    (the services of docker-compose.citus.yml)."""
    if not nodes:
        return
    rows = run(
        conn,
        "SELECT node_name, node_port, success, result FROM master_run_on_worker("
        "%s::text[], %s::int[], %s::text[], false)",
        [[h for h, _ in nodes], [p for _, p in nodes], [command] * len(nodes)],
    )
    failed = [f"{h}:{p}: {result}" for h, p, ok, result in rows if not ok]
    if failed:
        raise SystemExit(f"{command!r} failed on " + "; ".join(failed))


def prepare_database(name: str, nodes: list[tuple[str, int]] | None = None) -> None:
    """(Re)create the database ``name`` on every node of the cluster as a Citus database
    with schema-based sharding, the coordinator and the workers (``nodes``, else the
    coordinator's active workers) registered in it."""
    host, port = coordinator()
    nodes = workers(host, port) if nodes is None else nodes
    settings = [
        f'ALTER DATABASE "{name}" SET citus.enable_schema_based_sharding TO on',
        # Online moves need synchronous commits on the nodes (the library refuses them
        # otherwise); a cluster tuned with synchronous_commit = off still gets them here.
        f'ALTER DATABASE "{name}" SET synchronous_commit TO on',
    ]
    conn = connect(host, port, MAINTENANCE_DB)
    try:
        for command in (
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
            *settings,
        ):
            on_workers(conn, nodes, command)
            run(conn, command)
    finally:
        conn.close()
    conn = connect(host, port, name)
    try:
        run(conn, "CREATE EXTENSION citus")
        on_workers(conn, nodes, "CREATE EXTENSION citus")
        run(conn, "SELECT citus_set_coordinator_host(%s, %s)", [host, port])
        for node_host, node_port in nodes:
            run(conn, "SELECT citus_add_node(%s, %s)", [node_host, node_port])
    finally:
        conn.close()


def drop_database(name: str) -> None:
    """Drop the database ``name`` on every node of the cluster."""
    host, port = coordinator()
    nodes = workers(host, port)
    conn = connect(host, port, MAINTENANCE_DB)
    try:
        command = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        on_workers(conn, nodes, command)
        run(conn, command)
    finally:
        conn.close()


def active() -> bool:
    """Whether the suite runs against a Citus cluster (``make test-citus``)."""
    return bool(os.environ.get("TENANCY_TEST_CITUS"))


def django_admin(*args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "django", *args, "--settings=tests.settings", "--skip-checks"]
    subprocess.run(command, check=True, env=env)


def main() -> None:
    host, port = coordinator()
    nodes = workers(host, port)
    names = [
        os.environ.get("TENANCY_PG_TEST_NAME", DEFAULT_NAME),
        os.environ.get("TENANCY_PG_OTHER_TEST_NAME", OTHER_NAME),
    ]
    for name in names:
        prepare_database(name, nodes)
    env = {
        **os.environ,
        "PGHOST": host,
        "PGPORT": str(port),
        "PGDATABASE": names[0],
        "PGDATABASE_OTHER": names[1],
    }
    django_admin("migrate", "-v", "0", env=env)
    django_admin("migrate", "--database", "other", "-v", "0", env=env)
    django_admin("tenancy_reference_tables", env=env)
    print(
        f"==> Citus cluster {host}:{port} ready: databases {', '.join(names)} on the "
        f"coordinator and {len(nodes)} worker(s) ({', '.join(f'{h}:{p}' for h, p in nodes)})"
    )


if __name__ == "__main__":
    main()

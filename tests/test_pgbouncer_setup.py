"""The ``pgbouncer`` fixture really pools the test database's connections in
transaction mode: server connections are shared between clients, transaction by
transaction, and session state of one client reaches the others.

Plain driver clients here (psycopg 3, else psycopg2); the session's pgbouncer is shared
with other tests, so every test closes the server connections it used (and the state left on them).
"""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection

from benchmarks.services import PgError, pg_connect, wait_for

pytestmark = pytest.mark.postgresql


@pytest.fixture
def dbname(db, pgbouncer):
    """The pytest-django test database; its server connections are closed afterwards."""
    name = connection.settings_dict["NAME"]
    pgbouncer.drop_server_connections(name)
    yield name
    pgbouncer.drop_server_connections(name)


@pytest.fixture
def clients(pgbouncer, dbname):
    """Open autocommit driver clients through pgbouncer: ``clients(n)``."""
    opened = []

    def open_(count: int = 1):
        new = [pgbouncer.connect(dbname) for _ in range(count)]
        opened.extend(new)
        return new if count > 1 else new[0]

    yield open_
    for conn in opened:
        with contextlib.suppress(PgError):
            conn.close()


def scalar(conn, sql: str, params: tuple = ()):
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def direct(dbname: str):
    """A driver connection straight to the PostgreSQL server (not through pgbouncer)."""
    conn = pg_connect(dbname)
    conn.autocommit = True
    return conn


def test_clients_reach_the_real_server_through_pgbouncer_in_transaction_mode(
    pgbouncer, dbname, clients
):
    client = clients()
    assert client.info.port == pgbouncer.port != pgbouncer.server_port
    # The backend sees the server's own port, not pgbouncer's.
    assert scalar(client, "SELECT inet_server_port()") == pgbouncer.server_port
    assert scalar(client, "SELECT current_database()") == dbname
    (pool,) = [row for row in pgbouncer.admin("SHOW POOLS") if row["database"] == dbname]
    assert pool["pool_mode"] == "transaction"


def test_more_clients_than_server_connections_share_them(pgbouncer, dbname, clients):
    many = clients(pgbouncer.pool_size * 3)
    for conn in many:
        conn.autocommit = False  # each holds a server connection until it commits
    pids = set()
    # Open transactions in turn: never more than pool_size at once.
    for start in range(0, len(many), pgbouncer.pool_size):
        batch = many[start : start + pgbouncer.pool_size]
        pids.update(scalar(conn, "SELECT pg_backend_pid()") for conn in batch)
        for conn in batch:
            conn.commit()
    assert 1 <= len(pids) <= pgbouncer.pool_size < len(many)
    assert len(pgbouncer.servers(dbname)) <= pgbouncer.pool_size


def test_a_clients_backend_changes_between_transactions(clients):
    first, second = clients(2)
    before = scalar(first, "SELECT pg_backend_pid()")
    # The second client holds that (most recently released) server connection...
    second.autocommit = False
    assert scalar(second, "SELECT pg_backend_pid()") == before
    # ...so the first client's next transaction runs on another one.
    assert scalar(first, "SELECT pg_backend_pid()") != before
    second.rollback()
    # Once it is released, the first client may get it back.
    assert scalar(first, "SELECT pg_backend_pid()") == before


def test_a_session_setting_of_one_client_leaks_to_another(clients):
    first, second = clients(2)
    pid = scalar(first, "SELECT pg_backend_pid()")
    with first.cursor() as cursor:
        cursor.execute("SET tenancy.pgbouncer_probe = 'leaked'")  # session-level
    # The next transaction of any client gets the most recently released server.
    with second.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('tenancy.pgbouncer_probe', true)")
        assert cursor.fetchone() == (pid, "leaked")


def test_a_session_advisory_lock_outlives_the_client_that_took_it(pgbouncer, dbname, clients):
    client = clients()
    key = (7417, 4242)
    assert scalar(client, "SELECT pg_try_advisory_lock(%s, %s)", key) is True
    pid = scalar(client, "SELECT pg_backend_pid()")
    client.close()
    watcher = direct(dbname)
    try:
        holders = (
            "SELECT array_agg(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s AND objid = %s AND granted"
        )
        # The client is gone, its server connection stays in the pool, locked.
        assert scalar(watcher, holders, key) == [pid]
        assert pid in {row["remote_pid"] for row in pgbouncer.servers(dbname)}
        assert scalar(watcher, "SELECT pg_try_advisory_lock(%s, %s)", key) is False
        # Only closing the server connection releases it.
        pgbouncer.drop_server_connections(dbname)
        wait_for(lambda: scalar(watcher, holders, key) is None, 5, "the lock's release")
    finally:
        watcher.close()

"""A PgBouncer of the tests' own, in transaction pooling mode, in front of the
PostgreSQL server under test.

It runs Debian's ``/usr/sbin/pgbouncer`` (``apt-get install pgbouncer``; CI's
``.ci/run`` installs it) as a foreground child process on a free port, with its
configuration, auth file, log and pid file in a private temporary directory,
and is stopped by process id. Any database name goes through (a wildcard
entry), so pytest-django's test databases do.

PgBouncer refuses to run as root ("PgBouncer should not run as root"). Run as
root (as in CI), it is given ``-u postgres`` (or ``$TENANCY_PGBOUNCER_USER``):
it switches to that user at start-up, *before* it opens its log file, so the
temporary directory and the files in it are handed to that user. Run as any
other user, it runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# One copy of the service helpers, shared with the benchmark harness.
from benchmarks.services import PgError, free_port, pg_driver, wait_for

BINARY = "/usr/sbin/pgbouncer"


class PgBouncer:
    """A pgbouncer process (``pool_mode = transaction``) on a free loopback port.

    At most ``pool_size`` server connections per database and user: clients
    beyond that share them, one transaction at a time, so session state (a
    ``SET``, a session advisory lock, ``LISTEN``) of one client reaches others.
    """

    def __init__(self, *, pool_size: int = 5, binary: str = BINARY) -> None:
        self.binary = binary
        self.pool_size = pool_size
        self.port = free_port()
        self.user = os.environ.get("PGUSER", "postgres")
        self.server_host = os.environ.get("PGHOST", "127.0.0.1")
        self.server_port = int(os.environ.get("PGPORT", "5432"))
        self.dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # Connection parameters -------------------------------------------------

    def params(self, dbname: str) -> dict[str, Any]:
        """Connection parameters of database ``dbname`` through this pgbouncer (either driver)."""
        return {
            "dbname": dbname,
            "user": self.user,
            "host": "127.0.0.1",
            "port": self.port,
            "password": os.environ.get("PGPASSWORD", ""),
        }

    def connect(self, dbname: str, *, autocommit: bool = True, **extra: Any) -> Any:
        """A new connection (psycopg 3, else psycopg2) to ``dbname`` through this pgbouncer."""
        conn = pg_driver.connect(**self.params(dbname), **extra)
        conn.autocommit = autocommit
        return conn

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Run a command of PgBouncer's admin console (``SHOW SERVERS``, ``RECONNECT db``...)."""
        conn = self.connect("pgbouncer")  # the console takes no BEGIN: autocommit
        try:
            with conn.cursor() as cursor:
                cursor.execute(command)
                if cursor.description is None:
                    return []
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def servers(self, dbname: str) -> list[dict[str, Any]]:
        """The server connections pgbouncer holds to ``dbname`` (``SHOW SERVERS``)."""
        return [row for row in self.admin("SHOW SERVERS") if row["database"] == dbname]

    def drop_server_connections(self, dbname: str) -> None:
        """Close every server connection to ``dbname`` (and its clients), then accept again.

        The session state clients left on the shared server connections
        (settings, session advisory locks, LISTEN) goes with them.
        """
        if any(row["name"] == dbname for row in self.admin("SHOW DATABASES")):
            self.admin(f"KILL {dbname}")
            self.admin(f"RESUME {dbname}")

    # Process ---------------------------------------------------------------

    def start(self) -> PgBouncer:
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(
                f"{self.binary} is missing: install PgBouncer with `apt-get install pgbouncer`"
                " (CI's .ci/run does)"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="tenancy-pgbouncer-"))
        config = self._write_config()
        command = [self.binary, str(config)]
        if os.geteuid() == 0:
            user = os.environ.get("TENANCY_PGBOUNCER_USER", "postgres")
            entry = pwd.getpwnam(user)
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command[1:1] = ["-u", user]
        # Its stderr (written before the log file opens: a bad config, a taken
        # port, the user switch) goes to a file of its own.
        with (self.dir / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        try:
            wait_for(lambda: self._answers() or self._died(), 15, f"pgbouncer on port {self.port}")
        except TimeoutError:
            tail = self.log_tail()
            self.stop()
            raise TimeoutError(f"pgbouncer on port {self.port} did not answer:\n{tail}") from None
        if self._died():
            tail = self.log_tail()
            code = self.process.returncode
            self.stop()
            raise RuntimeError(f"pgbouncer exited with status {code}:\n{tail}")
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM: immediate shutdown) and remove its directory."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            self.process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of pgbouncer's log (or of its stderr, if the log is empty)."""
        if self.dir is None:
            return "(pgbouncer is not running)"
        for name in ("pgbouncer.log", "stderr.log"):
            path = self.dir / name
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                return "\n".join(text.splitlines()[-lines:])
        return "(pgbouncer logged nothing)"

    # Internals -------------------------------------------------------------

    def _write_config(self) -> Path:
        assert self.dir is not None
        users = dict.fromkeys(["postgres", "root", self.user])
        auth_file = self.dir / "userlist.txt"
        # trust: no password is checked, but the user must be listed.
        auth_file.write_text("".join(f'"{user}" ""\n' for user in users))
        config = self.dir / "pgbouncer.ini"
        config.write_text(
            f"""\
[databases]
* = host={self.server_host} port={self.server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
pool_mode = transaction
default_pool_size = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
auth_type = trust
auth_file = {auth_file}
admin_users = {", ".join(users)}
; The default in transaction mode: nothing resets a server connection
; between the clients that share it.
server_reset_query =
; No ignore_startup_parameters: neither driver (nor Django on it) sends
; extra_float_digits nor options. PgBouncer 1.18 refuses a connection with
; `options` ("unsupported startup parameter: options"); ignoring it instead
; would silently drop e.g. a `-c search_path=...`.
; A failed server login (e.g. a test database not created yet) blocks new
; server connections for this long; the default is 15 s.
server_login_retry = 1
logfile = {self.dir / "pgbouncer.log"}
pidfile = {self.dir / "pgbouncer.pid"}
"""
        )
        return config

    def _answers(self) -> bool:
        try:
            conn = pg_driver.connect(**self.params("postgres"), connect_timeout=1)
        except PgError:
            return False
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone() == (1,)
        except PgError:
            return False
        finally:
            conn.close()

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

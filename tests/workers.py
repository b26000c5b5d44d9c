"""Real Celery worker processes and a private Redis broker for the tests."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.db import connection, connections

# One copy of the service helpers, shared with the benchmark harness.
from benchmarks.services import die_with_parent, wait_for

ROOT = Path(__file__).resolve().parent.parent

#: Every worker started by this process and not stopped yet (see :func:`kill_all`).
_started: set[Worker] = set()


def kill_all() -> None:
    """SIGKILL the process group of every worker this process started and did not stop.

    Run at the end of the session and at exit, for a run that failed or was
    interrupted before a fixture's teardown. A run killed outright (``kill -9``)
    runs nothing: there the kernel kills the workers (:func:`die_with_parent`).
    """
    for worker in list(_started):
        worker.kill()


atexit.register(kill_all)


def suite_environment(**extra: str) -> dict[str, str]:
    """The environment of a process the suite starts: this process's, without any
    ``CELERY_*`` variable (tests/settings.py removed them; this only makes sure),
    plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    env.update(extra)
    return env


class Worker:
    """A ``celery worker`` process (with its pool children) on the test database."""

    def __init__(
        self,
        broker_url: str,
        queue: str,
        *,
        concurrency: int = 2,
        app: str = "tests.celery_app",
        **env: str,
    ) -> None:
        self.app = app
        self.broker_url = broker_url
        self.queue = queue
        self.concurrency = concurrency
        self.env = env
        self.log = Path(tempfile.mkstemp(prefix="tenancy-worker-", suffix=".log")[1])
        self.events = Path(tempfile.mkstemp(prefix="tenancy-events-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        env = suite_environment(
            DJANGO_SETTINGS_MODULE="tests.settings",
            PGDATABASE=connection.settings_dict["NAME"],
            # tests/settings.py reads the first, tests/migrations_project/settings.py the second.
            TENANCY_TEST_BROKER_URL=self.broker_url,
            CELERY_BROKER_URL=self.broker_url,
            TENANCY_CELERY_QUEUE=self.queue,
            TENANCY_TEST_EVENTS=str(self.events),
            PYTHONPATH=str(ROOT),
        )
        env.update(self.env)  # the test's own, which may override the above
        command = [
            sys.executable, "-m", "celery", "-A", self.app, "worker",
            "--loglevel=INFO", f"--concurrency={self.concurrency}", "--pool=prefork",
            "-Q", self.queue, "-n", f"{self.queue}-{os.getpid()}-{id(self)}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill parent and children
                preexec_fn=die_with_parent,  # and killed with this process, even by kill -9
            )  # fmt: skip
        _started.add(self)
        wait_for(lambda: b" ready." in self.log.read_bytes() or self._died(), 60, "the worker")
        if self._died():
            raise AssertionError(f"the worker exited:\n{self.output()}")
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def event_lines(self) -> list[str]:
        return self.events.read_text().splitlines()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None


# -- holding a worker in the middle of its DDL --


def hold_tenant_ddl() -> Any:
    """Hold a lock that tenant DDL needs, mid-transaction, on a connection of its own.

    Every testapp tenant table has a foreign key to ``auth_user``; creating or
    altering one waits for this lock, so a worker provisioning or migrating a
    tenant stops inside its DDL transaction until :func:`release_tenant_ddl`.
    """
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE")
    return blocker


def release_tenant_ddl(blocker: Any) -> None:
    blocker.rollback()
    blocker.close()


def waiting_on_auth_user() -> list[int]:
    """Return the backends queued for a lock on auth_user (workers held mid-DDL)."""
    with connection.cursor() as cursor:
        # Scoped to this database: other test runs share the server (and auth_user's oid).
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE relation = 'auth_user'::regclass AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return [row[0] for row in cursor.fetchall()]

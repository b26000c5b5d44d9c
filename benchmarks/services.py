"""The services a run needs: fresh PostgreSQL databases, a private redis-server,
Celery workers, and Django processes of one library with their environment.

Everything started here is stopped by the harness, by process (group) id.
Databases are named ``bench_*`` and dropped at the end of the run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # psycopg 3 first, as Django's PostgreSQL backend does; else psycopg2
    import psycopg as pg_driver
except ImportError:  # pragma: no cover - depends on the environment
    import psycopg2 as pg_driver  # type: ignore[no-redef]

#: The base class of the driver's errors (``psycopg.Error`` or ``psycopg2.Error``).
PgError = pg_driver.Error

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it is truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pg_params(dbname: str = "postgres") -> dict[str, Any]:
    """Connection parameters of the server (PGUSER/PGHOST/PGPORT/PGPASSWORD honoured)."""
    return {
        "dbname": dbname,
        "user": os.environ.get("PGUSER", "postgres"),
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "password": os.environ.get("PGPASSWORD", ""),
    }


def pg_connect(dbname: str = "postgres", **params: Any) -> Any:
    """A new connection of the installed driver to ``dbname`` (see :func:`pg_params`);
    ``params`` (``host``, ``port``, ``connect_timeout``...) override the defaults.

    Both drivers take the same keywords. Use ``with conn.cursor()`` and ``conn.close()``:
    ``with conn:`` commits on psycopg2 but also closes the connection on psycopg 3.
    """
    return pg_driver.connect(**{**pg_params(dbname), **params})


def die_with_parent() -> None:
    """``preexec_fn`` of a child process that must not outlive the one starting it.

    On Linux the kernel sends the child SIGKILL when its parent dies, however it
    dies (``kill -9`` included); Celery's prefork pool children already die with
    their worker the same way. Elsewhere it does nothing.
    """
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != _forked_from[0]:  # the parent died before the call
        os._exit(1)


_PR_SET_PDEATHSIG = 1
# The pid of the process that forked last (a preexec_fn runs Python's at-fork hooks).
_forked_from = [os.getpid()]
os.register_at_fork(before=lambda: _forked_from.__setitem__(0, os.getpid()))
try:  # loaded here, not in the child: a preexec_fn must not import or load anything
    import ctypes

    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):  # pragma: no cover
    _prctl = None


class Database:
    """A fresh database of the run's own (always ``bench_*``), dropped by :meth:`drop`."""

    def __init__(self, name: str) -> None:
        if not name.startswith("bench_"):
            raise ValueError(f"benchmark databases are named bench_*, not {name!r}")
        self.name = name

    def _admin(self, sql: str) -> None:
        conn = pg_connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
            conn.close()

    def create(self) -> Database:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def connect(self) -> Any:
        return pg_connect(self.name)

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        conn = self.connect()
        try:
            with conn, conn.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
                return row[0] if row else None
        finally:
            conn.close()


class RedisServer:
    """A redis-server of the run's own, on a free port, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # never left behind by a killed run
        )  # fmt: skip
        wait_for(self._answers, 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class Environment:
    """The environment of one library's processes: settings, database, stage, broker."""

    def __init__(self, settings: str, database: str, **extra: str) -> None:
        self.vars = {
            "DJANGO_SETTINGS_MODULE": settings,
            "BENCH_PG_NAME": database,
            "PYTHONPATH": str(ROOT),
            "PYTHONWARNINGS": "ignore",
            **extra,
        }

    def with_(self, pythonpath: str = "", **extra: str) -> Environment:
        """Return a copy with more variables (and a directory prepended to PYTHONPATH)."""
        clone = Environment.__new__(Environment)
        clone.vars = {**self.vars, **extra}
        if pythonpath:
            clone.vars["PYTHONPATH"] = pythonpath + os.pathsep + str(ROOT)
        return clone

    def full(self) -> dict[str, str]:
        return {**os.environ, **self.vars}

    def django(self, *args: str, timeout: float = 3600) -> tuple[float, str]:
        """Run ``python -m django ARGS``; return its wall time (s) and output. Raise on failure."""
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT, env=self.full(), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(
                f"`django-admin {' '.join(args)}` failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return elapsed, result.stdout

    def check_migrations(self) -> None:
        """Refuse to measure with migrations that no longer match the models.

        The benchmark apps' migrations are committed; a change to the
        library's ``AbstractTenant`` (or to django-tenants' mixins) needs them
        regenerated, or the run would measure tables the library no longer has.
        """
        try:
            self.django("makemigrations", "--check", "--dry-run", timeout=120)
        except RuntimeError as exc:
            settings = self.vars["DJANGO_SETTINGS_MODULE"]
            raise RuntimeError(
                f"the benchmark apps' migrations are out of date for {settings}"
                ": regenerate them with `python -m benchmarks.makemigrations --force`\n"
                f"{exc}"
            ) from None

    def python(self, module: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
        """Run ``python -m MODULE ARGS``, which prints one JSON object last; return it."""
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT, env=self.full(), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"`python -m {module} {' '.join(args)}` failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            )
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"`python -m {module}` printed no result:\n{result.stdout[-3000:]}")
        return dict(json.loads(lines[-1]))

    def spawn(self, module: str, *args: str) -> subprocess.Popen[str]:
        """Start ``python -m MODULE ARGS`` without waiting (collect with :func:`collect`)."""
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT, env=self.full(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip


def collect(process: subprocess.Popen[str], timeout: float = 3600) -> dict[str, Any]:
    """Wait for a process from :meth:`Environment.spawn`; return its JSON result."""
    stdout, stderr = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"{process.args} failed:\n{stdout[-3000:]}\n{stderr[-5000:]}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return dict(json.loads(lines[-1]))


class Worker:
    """A ``celery worker`` process with ``concurrency`` prefork children.

    It consumes ``queue``, by default the queue named by the environment's
    ``BENCH_QUEUE`` (the queue the library's processes of that environment
    send their tasks to).
    """

    def __init__(self, env: Environment, *, concurrency: int = 2, queue: str | None = None) -> None:
        self.env = env
        self.queue = queue or env.vars["BENCH_QUEUE"]
        self.concurrency = concurrency
        self.log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        command = [
            sys.executable, "-m", "celery", "-A", "benchmarks.celery_app", "worker",
            "--loglevel=WARNING", f"--concurrency={self.concurrency}", "--pool=prefork",
            "-Q", self.queue, "-n", f"{self.queue}-{id(self)}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        env = self.env.full()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop parent and children
            )  # fmt: skip
        wait_for(lambda: self._ready() or self._died(), 60, "the celery worker")
        if self._died():
            raise RuntimeError(f"the celery worker exited:\n{self.output()}")
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.unlink(missing_ok=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _ready(self) -> bool:
        # --loglevel=WARNING hides the banner's "ready." line; ask the worker instead.
        return b"ready" in self.log.read_bytes() or self._pinged()

    def _pinged(self) -> bool:
        from celery import Celery

        app = Celery(broker=self.env.vars["CELERY_BROKER_URL"])
        try:
            name = f"{self.queue}-{id(self)}@{socket.gethostname()}"
            replies = app.control.ping(destination=[name], timeout=0.5)
        except Exception:
            return False
        finally:
            app.close()
        return bool(replies)

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

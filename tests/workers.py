"""Real Celery worker processes and a private Redis broker for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A redis-server of the test's own, on its own port (never the shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, f"redis-server on port {self.port}")

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
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PGDATABASE": connection.settings_dict["NAME"],
            "CELERY_BROKER_URL": self.broker_url,
            "TENANCY_CELERY_QUEUE": self.queue,
            "TENANCY_TEST_EVENTS": str(self.events),
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
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
            )  # fmt: skip
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

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

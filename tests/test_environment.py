"""The suite cannot be fooled by its environment, and leaves nothing running behind.

- Whatever ``CELERY_*`` variables the shell or an ``.env`` file exports (a broker, a
  result backend), the suite's tasks go to its own broker: tests/settings.py drops
  them, and the worker processes get the broker fixture's URL.
- Worker processes die with the run that started them, even one killed by
  ``kill -9`` (tests/workers.py, benchmarks/services.py's ``die_with_parent``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from benchmarks.services import RedisServer, die_with_parent
from tests.testapp.models import Customer
from tests.workers import ROOT, Worker, suite_environment, wait_for

#: Set by test_a_killed_run_leaves_no_worker_behind for the run it starts (and kills).
HOLD = "TENANCY_TEST_HOLD_WORKER"
THIS = Path(__file__).relative_to(ROOT)


def test_the_suite_took_no_celery_variable_from_the_environment():
    from tests.celery_app import app

    assert not [name for name in os.environ if name.startswith("CELERY_")]
    assert app.conf.broker_url.startswith(("memory://", "redis://127.0.0.1:"))


@pytest.mark.postgresql
def test_a_signup_is_built_by_the_suites_own_worker(async_lifecycle, transactional_db):
    """A small test of a real worker: run by the test below under a foreign environment."""
    from tests.conftest import drop_all_tenant_storage

    try:
        tenant = Customer.objects.create(name=f"envsignup{secrets.token_hex(4)}")
        tenant.wait_until_ready(timeout=60)
        assert Customer.objects.get(pk=tenant.pk).state == "ready"
    finally:
        drop_all_tenant_storage()


def _pytest(test: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", f"{THIS}::{test}", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgresql
def test_an_exported_celery_broker_url_sends_nothing_to_that_broker(tmp_path):
    """CELERY_BROKER_URL (and the result backend, read and write URLs) exported to a
    Redis of their own: a run of a worker test passes, and that Redis never saw a
    connection, let alone a key."""
    foreign = RedisServer().start()
    try:
        client = redis.Redis(host="127.0.0.1", port=foreign.port, db=0)
        before = client.info("stats")["total_connections_received"]
        url = f"redis://127.0.0.1:{foreign.port}"
        names = connection.settings_dict["TEST"]["NAME"], "other"
        env = suite_environment(
            CELERY_BROKER_URL=f"{url}/15",
            CELERY_BROKER_READ_URL=f"{url}/15",
            CELERY_BROKER_WRITE_URL=f"{url}/15",
            CELERY_RESULT_BACKEND=f"{url}/14",
            # Test databases of that run's own: this run's are in use.
            TENANCY_PG_TEST_NAME=f"{names[0]}_env",
            TENANCY_PG_OTHER_TEST_NAME=f"{names[0]}_other_env",
        )
        log = tmp_path / "run.log"
        run = _pytest("test_a_signup_is_built_by_the_suites_own_worker", env, log)
        try:
            returncode = run.wait(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        output = log.read_text(errors="replace")
        assert returncode == 0 and "1 passed" in output, output[-4000:]
        assert client.info("keyspace") == {}
        assert client.info("stats")["total_connections_received"] == before
        client.close()
    finally:
        foreign.stop()


def test_holds_a_worker_until_killed(broker):
    """Started by the test below only: a worker and a broker, then a wait to be killed."""
    held = os.environ.get(HOLD)
    if not held:
        pytest.skip("run (and killed) by test_a_killed_run_leaves_no_worker_behind")
    worker = Worker(broker.url, f"tenancy-held-{os.getpid()}", concurrency=2).start()
    assert worker.process is not None and broker.process is not None
    Path(held).write_text(json.dumps({"worker": worker.process.pid, "redis": broker.process.pid}))
    time.sleep(600)


def _stat(pid: int) -> tuple[str, int] | None:
    """The state and process group of ``pid`` (from /proc), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def _alive_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run (zombies are dead)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            state, group = stat
            if group == pgid and state not in ("Z", "X"):
                alive.append(int(entry.name))
    return alive


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the kernel kills on Linux")
def test_a_killed_run_leaves_no_worker_behind(tmp_path):
    """A pytest run that started a worker (and its pool) and a redis-server is killed
    with SIGKILL: no teardown, no atexit. Within seconds none of them runs any more."""
    held = tmp_path / "held.json"
    env = suite_environment(
        TENANCY_TEST_DATABASE="sqlite",  # that run touches no database: nothing to leave
        TENANCY_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        TENANCY_SQLITE_TEST_PATH=str(tmp_path / "test.sqlite3"),
        **{HOLD: str(held)},
    )
    log = tmp_path / "run.log"
    run = _pytest("test_holds_a_worker_until_killed", env, log)
    try:
        wait_for(lambda: held.exists() or run.poll() is not None, 120, "the held worker")
        assert held.exists(), log.read_text(errors="replace")[-4000:]
        pids = json.loads(held.read_text())
        group = _alive_in_group(pids["worker"])
        assert pids["worker"] in group and len(group) >= 3, group  # the worker and its pool
        assert _alive(pids["redis"])
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    try:
        wait_for(
            lambda: not _alive_in_group(pids["worker"]) and not _alive(pids["redis"]),
            10,
            "the killed run's worker and redis-server to exit",
            interval=0.1,
        )
    except TimeoutError:
        left = _alive_in_group(pids["worker"]), _alive(pids["redis"])
        with contextlib.suppress(ProcessLookupError):  # not left running by this test either
            os.killpg(pids["worker"], signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids["redis"], signal.SIGKILL)
        pytest.fail(
            f"still running after the run was killed: worker group {left[0]}, "
            f"redis-server {'yes' if left[1] else 'no'}"
        )

"""`python -m worker demo` runs the whole lifecycle with no services at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Variables that would point the demo (or anything it starts) at real services.
SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "TENANCY_EAGER")


def run_worker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_runs_without_services():
    result = run_worker("demo")
    output = result.stdout
    assert result.returncode == 0, f"stdout:\n{output}\nstderr:\n{result.stderr}"
    # The embedded default: a fresh SQLite file and the in-memory broker.
    assert "SQLite" in output and "memory://" in output
    assert "postgres" not in output.lower() and "redis" not in output.lower()
    for name in ("acme", "globex", "initech"):
        assert any(
            line.split()[:2] == [name, "create()"] and line.endswith("state: pending")
            for line in output.splitlines()
        ), f"{name} was not shown pending after signup:\n{output}"
        assert any(
            line.split()[:2] == [name, "ready"] and "state: ready" in line
            for line in output.splitlines()
        ), f"{name} was not shown ready:\n{output}"
    assert "tenant_initech dropped" in output
    assert "acme and globex keep all their data" in output
    assert "Done in" in output


def test_usage_without_a_command():
    for args in ((), ("--help",)):
        result = run_worker(*args, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: python -m worker")
        assert "demo" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_worker("nonsense", timeout=30)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr

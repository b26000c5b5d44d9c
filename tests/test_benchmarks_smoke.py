"""The benchmark harness runs end to end in --quick mode (a smoke run, no timing checks)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from benchmarks.sizes import QUICK

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.postgresql


def test_the_benchmark_harness_runs_in_quick_mode():
    pytest.importorskip("django_tenants", reason="the benchmarks extra is not installed")
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "quick.json"
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        report = json.loads(output.read_text())
    keys = {metric["key"] for metric in report["metrics"]}
    assert {"create_ms", "ready_ms", "for_tenant_ns", "add_field_ms_per_tenant"} <= keys
    assert all(metric["ours"]["median"] is not None for metric in report["metrics"])
    spreads = {spread["key"]: spread for spread in report["scaleout"]}
    assert set(spreads) == {"one_database", "two_databases", "two_databases_scaled"}
    assert set(spreads["one_database"]["by_database"]) == {"default"}
    for key in ("two_databases", "two_databases_scaled"):
        # the default placement (fewest tenants) splits a burst evenly over both
        half = QUICK.scaleout * QUICK.scaleout_rounds // 2
        assert spreads[key]["by_database"] == {"default": half, "tenants2": half}, spreads[key]
        assert spreads[key]["rate"]["median"] > 0

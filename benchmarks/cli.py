"""``python -m benchmarks [--quick] [--only GROUP ...]``: run, print the table, write JSON.

Exits 0 when every benchmark ran, whatever the numbers (a missed target is a
finding, not a failure), and 1 when something broke; the table then shows
what was measured before the error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import machine, report, run_raw, run_tenancy, run_tenants
from benchmarks.context import GROUPS, Context
from benchmarks.services import RedisServer
from benchmarks.sizes import choose

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
#: Where ``--quick`` writes, so a smoke run never replaces the last full run's results.
QUICK_RESULTS = RESULTS.with_name("latest-quick.json")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of django-tenancy against django-tenants, side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only", nargs="+", choices=GROUPS, default=list(GROUPS), metavar="GROUP",
        help=f"run only these groups ({', '.join(GROUPS)})",
    )  # fmt: skip
    parser.add_argument(
        "--tenants", type=int, default=None, help="fleet size (default 1000, 20 quick)"
    )
    parser.add_argument(
        "--scaleout-tenants", type=int, default=None, help="signups per scale-out burst"
    )
    parser.add_argument(
        "--scaleout-rounds", type=int, default=None, help="rounds of the scale-out layouts"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"JSON results (default {RESULTS}, or {QUICK_RESULTS.name} beside it with --quick)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    output: Path = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    sizes = choose(args.quick, args.tenants, args.scaleout_tenants, args.scaleout_rounds)
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    about = machine.describe()  # before the run: the date is when it started
    started = time.monotonic()
    errors: list[str] = []
    data: dict[str, dict[str, Any]] = {"raw": {}, "tenancy": {}, "tenants": {}}
    redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            ctx = Context(sizes, redis, Path(workdir), tuple(args.only))
            ctx.say(f"sizes: {sizes.as_dict()}")
            steps: list[tuple[str, bool, Callable[[Context], dict[str, Any]]]] = [
                ("tenancy", True, run_tenancy.run_signups),
                ("raw", ctx.wants("raw") or ctx.wants("fleet"), run_raw.run),
                ("tenancy", True, run_tenancy.run_fleet),
                ("tenants", True, run_tenants.run),
                ("tenancy", True, run_tenancy.run_scaleout),
            ]
            for name, wanted, step in steps:
                if not wanted:
                    continue
                try:
                    data[name].update(step(ctx))
                except Exception:
                    errors.append(f"{name}: {traceback.format_exc()}")
                    ctx.say(f"{name} failed:\n{traceback.format_exc()}")
            ctx.say("done")
    finally:
        redis.stop()
    tables = report.build(data["raw"], data["tenancy"], data["tenants"], sizes)
    print(report.render(tables))
    results = {
        "command": command,
        "machine": about,
        "duration_s": round(time.monotonic() - started, 1),
        "sizes": sizes.as_dict(),
        "metrics": [metric.as_dict() for metric in tables.metrics],
        "limits": [limit.as_dict() for limit in tables.limits],
        "scaleout": [spread.as_dict() for spread in tables.spreads],
        "data": data,
        "errors": errors,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults: {output}")
    if errors:
        print(f"{len(errors)} benchmark group(s) failed:", *errors, sep="\n", file=sys.stderr)
        return 1
    return 0

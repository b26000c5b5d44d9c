"""Print BENCHMARKS.md's results section from a results file: ``python -m benchmarks.markdown``.

The narrative of BENCHMARKS.md (what limits each missed target) is written
by hand; the machine, the command and the tables come from the JSON, so
they are never retyped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.cli import RESULTS
from benchmarks.report import Tables, build, render
from benchmarks.sizes import Sizes


def tables(results: dict[str, Any]) -> Tables:
    """Recompute the report's tables from a results file's samples."""
    data = results["data"]
    return build(data["raw"], data["tenancy"], data["tenants"], Sizes(**results["sizes"]))


def machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    tree = " (with uncommitted changes to tenancy/)" if m.get("tenancy_modified") else ""
    return "\n".join([
        f"- date: {m['date']} (started; the run took {results.get('duration_s', '?')} s)",
        f"- command: `{results['command'].strip()}`",
        f"- machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}",
        f"- PostgreSQL {m['postgresql']}, Redis {m['redis']}",
        f"- Python {m['python']}, Django {m['django']}, Celery {m['celery']}, "
        f"django-tenants {m['django-tenants']}, django-tenancy {m['django-tenancy']} "
        f"at commit {m.get('commit', '?')}{tree}",
        f"- sizes: {results['sizes']}",
    ])  # fmt: skip


def notes(tables: Tables) -> str:
    return "\n".join(f"- {m.name.strip()}: {m.note}" for m in tables.metrics if m.note)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    computed = tables(results)
    print(machine(results), "", render(computed), "", notes(computed), sep="\n")


if __name__ == "__main__":
    main()

"""The harness side of the physical limit: one child process on a fresh database."""

from __future__ import annotations

from typing import Any

from benchmarks.context import Context
from benchmarks.services import Database


def run(ctx: Context) -> dict[str, Any]:
    db = Database(ctx.database_name("raw", "ddl")).create()
    try:
        ctx.say(f"raw DDL: {ctx.sizes.raw_single} schemas one by one, {ctx.sizes.fleet} in a burst")
        env = ctx.environment("raw", db.name)
        return env.python(
            "benchmarks.raw", "--single", str(ctx.sizes.raw_single), "--fleet", str(ctx.sizes.fleet)
        )
    finally:
        db.drop()

"""What the three library runners share: sizes, the broker, a work directory, progress."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.services import Environment, RedisServer
from benchmarks.sizes import Sizes
from benchmarks.stages import migrations_at
from benchmarks.workload import FINAL_STAGE, STAGE_ENV

#: Benchmark groups, selectable with ``--only``.
GROUPS = ("raw", "signup", "inprocess", "fleet", "scaleout")


@dataclass
class Context:
    sizes: Sizes
    redis: RedisServer
    workdir: Path
    only: tuple[str, ...] = GROUPS
    tag: str = field(default_factory=lambda: str(os.getpid()))
    started: float = field(default_factory=time.monotonic)

    def wants(self, group: str) -> bool:
        return group in self.only

    def say(self, message: str) -> None:
        """Progress on stderr, so stdout keeps only the table."""
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"[{elapsed:7.1f}s] {message}\n")
        sys.stderr.flush()

    def database_name(self, library: str, purpose: str) -> str:
        return f"bench_{library}_{purpose}_{self.tag}"

    def environment(self, library: str, database: str, stage: int = FINAL_STAGE) -> Environment:
        """The environment of ``library``'s processes on ``database`` at ``stage``."""
        staged = migrations_at(library, stage, FINAL_STAGE, self.workdir)
        base = Environment(
            f"benchmarks.settings.{library}",
            database,
            CELERY_BROKER_URL=self.redis.url,
            BENCH_QUEUE=f"bench-{library}-{self.tag}",
            BENCH_CACHE_SIZE=str(self.sizes.cache_size),
        )
        return base.with_(staged.path, **{STAGE_ENV: str(stage), **staged.env()})

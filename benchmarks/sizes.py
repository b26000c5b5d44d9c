"""How big a run is: the full sizes of the issue, or ``--quick`` ones for CI-sized checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Sizes:
    #: Tenants signed up one at a time (after ``warmup`` unmeasured ones).
    signups: int
    warmup: int
    #: Tenants of the fleet: the burst, then one AddField and a no-op migrate on all of them.
    fleet: int
    #: Schemas created one at a time by the raw DDL limit.
    raw_single: int
    #: ``timeit`` repeats and calls per repeat of the per-call micro-benchmarks.
    repeat: int
    number: int
    #: Cold builds of one tenant's classes, and tenants measured for memory.
    cold: int
    memory: int
    #: The LRU cache size, and tenants passed through it for resident memory.
    cache_size: int
    pass_tenants: int
    #: Simulated requests counted for queries.
    requests: int
    #: Signups of each burst of the scale-out comparison (one database against two).
    scaleout: int = 0  # results files of older runs have no such size
    #: Rounds of the scale-out layouts, interleaved (A B C A B C), so drift hits each alike.
    scaleout_rounds: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    signups=50, warmup=3, fleet=1000, raw_single=50, repeat=7, number=200_000,
    cold=50, memory=100, cache_size=1000, pass_tenants=10_000, requests=20,
    scaleout=300, scaleout_rounds=3,
)  # fmt: skip

QUICK = Sizes(
    signups=5, warmup=2, fleet=20, raw_single=10, repeat=5, number=20_000,
    cold=10, memory=20, cache_size=100, pass_tenants=1000, requests=5,
    scaleout=12,
)  # fmt: skip


def choose(
    quick: bool,
    fleet: int | None = None,
    scaleout: int | None = None,
    scaleout_rounds: int | None = None,
) -> Sizes:
    """Return the sizes of a run; the arguments given override the fleet and scale-out sizes."""
    sizes = QUICK if quick else FULL
    overrides = {"fleet": fleet, "scaleout": scaleout, "scaleout_rounds": scaleout_rounds}
    return replace(sizes, **{key: value for key, value in overrides.items() if value})

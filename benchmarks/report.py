"""Turn the children's samples into the table of metrics, targets and ratios.

Each metric compares django-tenancy ("ours") with django-tenants ("theirs")
on the same work, and carries the issue's target for this library. A missed
target is reported, never an error: the run's exit code only reflects errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.sizes import Sizes
from benchmarks.stats import Summary, single, summarize


@dataclass
class Metric:
    key: str
    name: str
    ours: Summary | None
    theirs: Summary | None
    #: "lower" or "higher": which direction is better.
    better: str
    target: str
    met: bool | None = None
    note: str = ""
    #: Whether the two sides measure the same thing (else no ratio is shown).
    comparable: bool = True

    @property
    def ratio(self) -> float | None:
        """How many times better this library is than django-tenants (>1: better)."""
        if (
            not self.comparable
            or self.ours is None
            or self.theirs is None
            or not self.ours.median
            or not self.theirs.median
        ):
            return None
        if self.better == "lower":
            return self.theirs.median / self.ours.median
        return self.ours.median / self.theirs.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "ours": self.ours.as_dict() if self.ours else None,
            "theirs": self.theirs.as_dict() if self.theirs else None,
            "better": self.better,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class Limit:
    """A figure of the physical limit (raw SQL), measured in the same run."""

    key: str
    name: str
    value: Summary

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "value": self.value.as_dict()}


@dataclass
class Spread:
    """One layout of the scale-out comparison: the burst's rate against one database's."""

    key: str
    name: str
    rate: Summary
    ready: Summary
    #: Tenants placed on each database, summed over the rounds.
    by_database: dict[str, int]
    #: This layout's median rate over the one-database layout's (>1: faster).
    ratio: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "rate": self.rate.as_dict(),
            "ready": self.ready.as_dict(),
            "by_database": self.by_database,
            "ratio": self.ratio,
        }


@dataclass
class Tables:
    metrics: list[Metric] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)
    spreads: list[Spread] = field(default_factory=list)


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _summary(samples: Any, unit: str) -> Summary | None:
    return summarize(list(samples), unit) if samples else None


def _rate(burst: Any) -> Summary | None:
    if not burst:
        return None
    return single(burst["count"] / burst["wall_s"], "tenants/s")


def _per_tenant(run: Any, n: int) -> Summary | None:
    return single(run["seconds"] / n * 1000, "ms/tenant") if run else None


def _steady_growth(resident: Any) -> Summary | None:
    """RSS growth from the second checkpoint (a whole cache evicted once) to the highest later."""
    if not resident or len(resident["rss_mib"]) < 3:
        return None
    turned = resident["rss_mib"][1][1]
    highest = max(rss for _, rss in resident["rss_mib"][1:])
    return single((highest - turned) / turned * 100, "%")


def _judged(metric: Metric, passes: Callable[[Summary], bool]) -> Metric:
    """Record whether our measurement meets the metric's target (when there is one)."""
    if metric.ours:
        metric.met = passes(metric.ours)
    return metric


def build(
    raw: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], sizes: Sizes
) -> Tables:
    """Compute every metric that the run's data allows."""
    n = sizes.fleet
    tables = Tables()
    limit_one = _summary(raw.get("single_ms"), "ms")
    limit_rate = single(n / raw["burst_s"], "tenants/s") if raw.get("burst_s") else None
    limit_alter = _summary(raw.get("add_field_ms"), "ms")
    paired = _summary(_get(ours, "signups", "raw_ms"), "ms")
    if paired:
        tables.limits.append(
            Limit(
                "raw_final_ddl_paired",
                "final-state DDL, replayed right after each django-tenancy signup (paired)",
                paired,
            )
        )
    if limit_one:
        tables.limits.append(
            Limit(
                "raw_final_ddl",
                f"final-state DDL ({raw['statements_final']} statements), "
                "one schema, one transaction",
                limit_one,
            )
        )
    if limit_rate:
        tables.limits.append(
            Limit(
                "raw_burst_rate",
                f"DDL of {n} schemas over {raw['burst_threads']} connections "
                "(state before the last AddField)",
                limit_rate,
            )
        )
    if limit_alter:
        tables.limits.append(
            Limit(
                "raw_add_field", "the last AddField's SQL, one schema, one transaction", limit_alter
            )
        )

    m: list[Metric] = tables.metrics
    create = Metric(
        "create_ms",
        "`create()` latency in the signup request",
        _summary(_get(ours, "signups", "create_ms"), "ms"),
        _summary(_get(theirs, "signups", "create_ms"), "ms"),
        "lower",
        "<= 5 ms median",
    )
    m.append(_judged(create, lambda ours: ours.median <= 5))

    pooled = Metric(
        "ready_pool_ms",
        "signup to ready, one at a time, warm pool (real worker, Redis)",
        _summary(_get(ours, "pool_signups", "ready_ms"), "ms"),
        _summary(_get(theirs, "signups", "ready_ms"), "ms"),
        "lower",
        "<= 15 ms median",
        note="TENANCY_POOL_SIZE=3, refilled (unmeasured) between two signups",
    )
    m.append(_judged(pooled, lambda ours: ours.median <= 15))
    ready = Metric(
        "ready_ms",
        "signup to ready, one at a time, no pool (real worker, Redis)",
        _summary(_get(ours, "signups", "ready_ms"), "ms"),
        _summary(_get(theirs, "signups", "ready_ms"), "ms"),
        "lower",
        "<= 1.3x the raw DDL limit",
        note="the limit: the raw DDL replayed right after each signup, in the same process",
    )
    reference = paired or limit_one
    if ready.ours and reference:
        bound = 1.3 * reference.median
        ready.target += f" ({bound:.0f} ms)"
        ready.met = ready.ours.median <= bound
    m.append(ready)

    burst = Metric(
        "burst_rate",
        f"burst of {n} signups, 2 worker processes, all ready",
        _rate(ours.get("burst")),
        _rate(theirs.get("burst")),
        "higher",
        ">= 0.8x the raw limit's rate",
        note="django-tenants: two processes signing up half each (it provisions inline)",
    )
    if burst.ours and limit_rate:
        burst.target += f" ({0.8 * limit_rate.median:.1f} tenants/s)"
        burst.met = burst.ours.median >= 0.8 * limit_rate.median
    m.append(burst)
    m.append(
        Metric(
            "burst_ready_ms",
            "  per tenant in that burst: signup to ready",
            _summary(_get(ours, "burst", "ready_ms"), "ms"),
            _summary(_get(theirs, "burst", "ready_ms"), "ms"),
            "lower",
            "(no target)",
            note="ours includes the wait in the queue behind the burst; "
            "theirs is each inline create()",
            comparable=False,
        )
    )

    ours_add = _per_tenant(ours.get("add_field"), n)
    multi = _per_tenant(theirs.get("add_field_multiprocessing"), n)
    add = Metric(
        "add_field_ms_per_tenant",
        f"one AddField on {n} tenants (total / tenants)",
        ours_add,
        multi,
        "lower",
        ">= 20x faster than django-tenants' multiprocessing executor",
        note="ours: tenancy_migrate through 2 worker processes; theirs: migrate_schemas "
        "--executor=multiprocessing (2 processes); each timed as a whole command",
    )
    if add.ratio is not None:
        add.met = add.ratio >= 20
    m.append(add)
    m.append(
        Metric(
            "add_field_standard_ms_per_tenant",
            "  the same, django-tenants' standard executor",
            ours_add,
            _per_tenant(theirs.get("add_field_standard"), n),
            "lower",
            "(no target)",
        )
    )

    noop_ours = ours.get("noop")
    noop = Metric(
        "noop_migrate_s",
        f"migrate with nothing to apply, {n} tenants (total)",
        single(noop_ours["seconds"], "s") if noop_ours else None,
        single(theirs["noop_multiprocessing"]["seconds"], "s")
        if theirs.get("noop_multiprocessing")
        else None,
        "lower",
        "< 2 s in total",
    )
    m.append(_judged(noop, lambda ours: ours.median < 2))

    warm = Metric(
        "for_tenant_ns",
        "`for_tenant()` on a cached tenant (per call)",
        _summary(_get(ours, "inprocess", "for_tenant_ns"), "ns"),
        _summary(_get(theirs, "inprocess", "set_tenant_ns"), "ns"),
        "lower",
        "<= 1 microsecond",
        note="django-tenants: connection.set_tenant(), its way of picking a tenant",
    )
    m.append(_judged(warm, lambda ours: ours.median <= 1000))

    cold = Metric(
        "cold_build_ms",
        "building one tenant's 20 classes (cold)",
        _summary(_get(ours, "inprocess", "cold_build_ms"), "ms"),
        None,
        "lower",
        "<= 3 ms",
        note="django-tenants builds no per-tenant classes",
    )
    m.append(_judged(cold, lambda ours: ours.median <= 3))
    m.extend(_against_floor(ours))

    mem = Metric(
        "memory_kib",
        "memory per cached tenant, 20 models (tracemalloc)",
        _summary(_get(ours, "inprocess", "memory_kib"), "KiB"),
        None,
        "lower",
        "<= 150 KiB",
        note="django-tenants keeps no per-tenant classes",
    )
    m.append(_judged(mem, lambda ours: ours.median <= 150))

    resident = _get(ours, "inprocess", "resident")
    flat = Metric(
        "resident_growth_pct",
        f"resident memory growth, {sizes.pass_tenants} tenants "
        f"through a {sizes.cache_size}-tenant cache",
        single(resident["growth_pct"], "%") if resident else None,
        None,
        "lower",
        "flat: within 10%",
        note="growth of the process's RSS after the cache first filled, to its highest point",
    )
    m.append(_judged(flat, lambda ours: ours.median <= 10))
    m.append(
        Metric(
            "resident_steady_growth_pct",
            "  the same, from the cache's first full turnover on",
            _steady_growth(resident),
            None,
            "lower",
            "(no target)",
            note="one step when eviction starts (freed classes leave allocator arenas "
            "partly used), then flat: no leak",
        )
    )

    queries = Metric(
        "extra_queries",
        "extra queries per request that reads one tenant model",
        _summary(_get(ours, "inprocess", "extra_queries"), "queries"),
        _summary(_get(theirs, "inprocess", "extra_queries"), "queries"),
        "lower",
        "zero",
        note="beyond the tenant look-up and the read; "
        "theirs: TenantMainMiddleware's SET search_path",
    )
    m.append(_judged(queries, lambda ours: (ours.median if ours.p95 is None else ours.p95) == 0))
    tables.spreads = _spreads(ours.get("scaleout") or {})
    return tables


def _against_floor(ours: dict[str, Any]) -> list[Metric]:
    """The class builds against Django's own ``StateApps`` build of the same 20 models.

    The floor is measured in the same child, alternating with the further
    builds, so the ratios hold on a machine whose speed drifts.
    """
    floor = _summary(_get(ours, "inprocess", "floor_build_ms"), "ms")
    further = _summary(_get(ours, "inprocess", "cold_build_ms"), "ms")
    first = _summary(_get(ours, "inprocess", "first_build_ms"), "ms")

    def ratio(build: Summary | None) -> Summary | None:
        if build is None or floor is None or not floor.median:
            return None
        return single(build.median / floor.median, "x")

    further_ratio = Metric(
        "further_build_vs_floor",
        "  a further tenant's classes / Django's own build",
        ratio(further),
        None,
        "lower",
        "<= 0.5x (stretch 0.25x)",
        note="medians of the cold build above and of the floor, measured alternately",
    )
    first_ratio = Metric(
        "first_build_vs_floor",
        "  a fresh process's first tenant / Django's own build",
        ratio(first),
        None,
        "lower",
        "<= 1.5x",
        note="a copy of the prototypes that the app's ready() built at start-up",
    )
    prepare = _summary(_get(ours, "inprocess", "prepare_ms"), "ms")
    start_up = Metric(
        "prepare_vs_floor",
        "  start-up: building one database's prototype / Django's own build",
        ratio(prepare),
        None,
        "lower",
        "(no target)",
        note="once per process and database, in the app's ready(); no request pays it",
    )
    return [
        Metric(
            "first_build_ms",
            "building a fresh process's first tenant's 20 classes",
            first,
            None,
            "lower",
            "(see the ratio below)",
            note="one sample per run: the first build happens once per process",
        ),
        Metric(
            "floor_build_ms",
            "Django's own build of the same 20 models (StateApps, the floor)",
            floor,
            None,
            "lower",
            "(the floor)",
            note="rendered from the migration state through ModelBase, as migrate does",
        ),
        _judged(further_ratio, lambda ours: ours.median <= 0.5),
        _judged(first_ratio, lambda ours: ours.median <= 1.5),
        start_up,
    ]


def _spreads(scaleout: dict[str, Any]) -> list[Spread]:
    """The scale-out layouts, each against the one-database layout of the same run.

    Each layout ran once per round: its rate is the median of its rounds'
    rates, its latencies are every tenant's of every round.
    """
    base = _rates(scaleout.get("one_database") or [])
    spreads = []
    for key, bursts in scaleout.items():
        rate = _rates(bursts)
        ready = _summary([ms for burst in bursts for ms in burst["ready_ms"]], "ms")
        if rate is None or ready is None:
            continue
        placed: dict[str, int] = {}
        for burst in bursts:
            for alias, count in burst["by_database"].items():
                placed[alias] = placed.get(alias, 0) + count
        ratio = rate.median / base.median if base else None
        spreads.append(Spread(key, bursts[0]["layout"], rate, ready, placed, ratio))
    return spreads


def _rates(bursts: list[dict[str, Any]]) -> Summary | None:
    rates = [burst["count"] / burst["wall_s"] for burst in bursts]
    return summarize(rates, "tenants/s") if rates else None


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(summary: Summary | None) -> str:
    if summary is None:
        return "n/a"
    if summary.p95 is None:
        return f"{_fmt(summary.median)} {summary.unit}"
    return f"{_fmt(summary.median)} / {_fmt(summary.p95)} {summary.unit}"


def render(tables: Tables) -> str:
    """Return the Markdown tables of the metrics and the physical limit."""
    lines = [
        "| metric | django-tenancy (median / p95) | django-tenants (median / p95) "
        "| ratio (x better) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for metric in tables.metrics:
        ratio = f"{metric.ratio:.1f}x" if metric.ratio is not None else "n/a"
        met = {True: "yes", False: "**no**", None: "-"}[metric.met]
        lines.append(
            f"| {metric.name} | {cell(metric.ours)} | {cell(metric.theirs)} | {ratio} "
            f"| {metric.target} | {met} |"
        )
    if tables.spreads:
        lines += [
            "",
            "| scale-out: burst of signups (django-tenancy only) | rate | signup to ready "
            "(median / p95) | tenants per database | rate vs 1 database |",
            "|---|---|---|---|---|",
        ]
        for spread in tables.spreads:
            placed = ", ".join(f"{alias} {n}" for alias, n in sorted(spread.by_database.items()))
            ratio = f"{spread.ratio:.2f}x" if spread.ratio is not None else "n/a"
            lines.append(
                f"| {spread.name} | {cell(spread.rate)} | {cell(spread.ready)} | {placed} "
                f"| {ratio} |"
            )
    if tables.limits:
        lines += ["", "| physical limit (raw SQL, same run) | median / p95 |", "|---|---|"]
        lines += [f"| {limit.name} | {cell(limit.value)} |" for limit in tables.limits]
    return "\n".join(lines)

"""Monthly GPU cost: per pool, per env, per plan (the change between the plan's before and after).

Pure arithmetic over hourly prices; the prices come from a `Pricer` the caller builds
(`pyctl.catalog.prices.env_pricer`), so tables of cases need no data files.

Billing rules (docs/cost.md):
- reserved capacity is billed 730 h a month per reserved instance, used or not; instances a pool runs
  beyond its reservation (capacity-reservations-first) are billed on demand for the expected hours;
- on-demand and spot instances are billed for the pool's expected hours (730 when not set) x its count;
- a spot pool's on-demand base (AWS `on_demand_base` / `on_demand_percentage_above_base`) is on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

HOURS_PER_MONTH = 730.0
GPU_CAPACITY_OUTPUT = "gpu_capacity"


@dataclass(frozen=True)
class HourlyPrice:
    """What one instance costs per hour, and where the figure came from."""

    hourly: float
    basis: str
    as_of: str
    estimate: bool = False


# (cloud, instance_type, capacity kind, gpus_per_instance) -> price of one instance-hour, None if unknown.
Pricer = Callable[[str, str, str, int], HourlyPrice | None]


@dataclass(frozen=True)
class PoolUsage:
    """What one pool runs in a month."""

    name: str
    cloud: str
    capacity_kind: str  # reserved | on_demand | spot
    instance_type: str
    gpus_per_instance: int
    instances: int
    hours_per_month: float | None = None  # None: all month (730 h)
    reserved_instances: int | None = None  # reserved pools: the reservation's count (default: instances)
    on_demand_instances: int = 0  # spot pools: instances bought on demand (the fallback floor)


@dataclass(frozen=True)
class CostLine:
    kind: str
    instances: int
    hours: float
    price: HourlyPrice

    @property
    def monthly(self) -> float:
        return self.instances * self.hours * self.price.hourly


@dataclass(frozen=True)
class PoolCost:
    pool: PoolUsage
    lines: tuple[CostLine, ...]
    missing: str = ""  # why no price was found; the pool is then left out of totals

    @property
    def monthly(self) -> float:
        return sum(line.monthly for line in self.lines)

    @property
    def hourly_running(self) -> float:
        """$/hour while every instance of the pool runs (the basis of cost per token)."""
        return sum(line.instances * line.price.hourly for line in self.lines)

    @property
    def estimate(self) -> bool:
        return any(line.price.estimate for line in self.lines)


def _hours(usage: PoolUsage) -> float:
    return HOURS_PER_MONTH if usage.hours_per_month is None else usage.hours_per_month


def _billed(usage: PoolUsage) -> list[tuple[str, int, float]]:
    """(kind, instances, hours) billed for a month; zero-instance lines dropped."""
    hours = _hours(usage)
    if usage.capacity_kind == "reserved":
        reserved = usage.instances if usage.reserved_instances is None else usage.reserved_instances
        lines = [("reserved", reserved, HOURS_PER_MONTH), ("on_demand", usage.instances - reserved, hours)]
    elif usage.capacity_kind == "spot":
        base = min(usage.on_demand_instances, usage.instances)
        lines = [("on_demand", base, hours), ("spot", usage.instances - base, hours)]
    else:
        lines = [(usage.capacity_kind, usage.instances, hours)]
    return [line for line in lines if line[1] > 0]


def pool_cost(usage: PoolUsage, price: Pricer) -> PoolCost:
    lines = []
    for kind, instances, hours in _billed(usage):
        found = price(usage.cloud, usage.instance_type, kind, usage.gpus_per_instance)
        if found is None:
            missing = f"no {kind} price for {usage.cloud} {usage.instance_type}"
            return PoolCost(usage, (), missing)
        lines.append(CostLine(kind, instances, hours, found))
    return PoolCost(usage, tuple(lines))


@dataclass(frozen=True)
class EnvCost:
    pools: tuple[PoolCost, ...]

    @property
    def monthly(self) -> float:
        return sum(p.monthly for p in self.pools)

    @property
    def missing(self) -> tuple[PoolCost, ...]:
        return tuple(p for p in self.pools if p.missing)


def env_cost(pools: Iterable[PoolUsage], price: Pricer) -> EnvCost:
    return EnvCost(tuple(pool_cost(p, price) for p in pools))


# --- expected and worst case -------------------------------------------------------------------------


def expected_instances(desired: int, maximum: int, hours_per_month: float | None) -> int:
    """Instances a pool is costed at: its desired count, or one when it sits at zero but declares
    `expected_hours_per_month` (a scale-from-zero pool that does run: its hours are not free)."""
    if desired == 0 and maximum > 0 and hours_per_month:
        return 1
    return desired


def spot_on_demand_count(instances: int, base: int, percent_above_base: int) -> int:
    """Instances of an AWS spot pool bought on demand: the base, then a share of the rest."""
    above = max(instances - base, 0)
    return min(base, instances) + above * percent_above_base // 100


def worst_case_usage(usage: PoolUsage, *, max_instances: int, on_demand_at_max: int = 0) -> PoolUsage:
    """The pool at its `max`, every instance running all month (730 h)."""
    return replace(usage, instances=max_instances, hours_per_month=None, on_demand_instances=on_demand_at_max)


def spot_at_on_demand(price: Pricer) -> Pricer:
    """Spot priced at the on-demand rate: the ceiling of a spot price (AWS's default maximum price is the
    on-demand price; GCP spot prices are always below on demand)."""

    def ceiling(cloud: str, instance_type: str, kind: str, gpus: int) -> HourlyPrice | None:
        if kind != "spot":
            return price(cloud, instance_type, kind, gpus)
        found = price(cloud, instance_type, "on_demand", gpus)
        if found is None:
            return None
        return HourlyPrice(
            found.hourly, f"{found.basis}, on-demand as the spot ceiling", found.as_of, found.estimate
        )

    return ceiling


@dataclass(frozen=True)
class PoolOutlook:
    """A pool's monthly cost as expected (desired count, expected hours) and in the worst case (max, 730 h,
    spot at the on-demand rate)."""

    expected: PoolCost
    worst: PoolCost
    max_instances: int
    scaled_from_zero: bool = False  # desired is 0 but the pool expects hours: costed as one instance

    @property
    def name(self) -> str:
        return self.expected.pool.name


@dataclass(frozen=True)
class EnvOutlook:
    pools: tuple[PoolOutlook, ...]

    @property
    def expected_monthly(self) -> float:
        return sum(p.expected.monthly for p in self.pools)

    @property
    def worst_monthly(self) -> float:
        return sum(p.worst.monthly for p in self.pools)

    @property
    def missing(self) -> tuple[PoolCost, ...]:
        return tuple(c for p in self.pools for c in (p.expected, p.worst) if c.missing)

    @property
    def estimate(self) -> bool:
        return any(c.estimate for p in self.pools for c in (p.expected, p.worst))


def pool_outlook(
    expected: PoolUsage, worst: PoolUsage, price: Pricer, *, scaled_from_zero: bool = False
) -> PoolOutlook:
    return PoolOutlook(
        expected=pool_cost(expected, price),
        worst=pool_cost(worst, spot_at_on_demand(price)),
        max_instances=worst.instances,
        scaled_from_zero=scaled_from_zero,
    )


def outlook_text(outlook: EnvOutlook) -> list[str]:
    """Lines for a terminal summary: the env's expected and worst-case month, and each pool's."""
    lines = [
        f"Monthly cost: expected {money(outlook.expected_monthly)}, "
        f"worst case {money(outlook.worst_monthly)} (every pool at max, all month, spot at on-demand)"
    ]
    for p in outlook.pools:
        expected = "?" if p.expected.missing else money(p.expected.monthly)
        worst = "?" if p.worst.missing else money(p.worst.monthly)
        note = " (desired 0: costed as 1 instance for its expected hours)" if p.scaled_from_zero else ""
        lines.append(
            f"  {p.name}: expected {expected}{note}, worst {worst} at {p.max_instances} x {p.worst.pool.instance_type}"
        )
    return lines


def outlook_markdown(outlook: EnvOutlook) -> list[str]:
    """Lines for the pull-request comment: one row per pool, expected and worst-case month."""
    out = [
        f"#### Monthly cost: expected {money(outlook.expected_monthly)}, worst case {money(outlook.worst_monthly)}",
        "",
        "| pool | expected | worst case (max, 730 h, spot at on-demand) |",
        "|---|---:|---:|",
    ]
    for p in outlook.pools:
        expected = "?" if p.expected.missing else money(p.expected.monthly)
        if p.scaled_from_zero and not p.expected.missing:
            expected += " (1 instance, expected hours)"
        worst = "?" if p.worst.missing else money(p.worst.monthly)
        out.append(f"| {p.name} | {expected} | {worst} ({p.max_instances} x {p.worst.pool.instance_type}) |")
    out.append("")
    return out


def cost_per_million_tokens(hourly: float, tokens_per_second: float) -> float:
    """$ per 1M tokens = hourly cost / (tokens per second x 3600) x 1e6."""
    if tokens_per_second <= 0:
        raise ValueError("tokens per second must be positive")
    return hourly / (tokens_per_second * 3600) * 1e6


# --- the cost change of a plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class PoolCostChange:
    pool: str
    before: PoolCost | None
    after: PoolCost | None

    @property
    def known(self) -> bool:
        return not any(c is not None and c.missing for c in (self.before, self.after))

    @property
    def delta(self) -> float:
        return (self.after.monthly if self.after else 0.0) - (self.before.monthly if self.before else 0.0)


@dataclass(frozen=True)
class CostChange:
    pools: tuple[PoolCostChange, ...]

    @property
    def total(self) -> float:
        """Monthly delta over the pools with known prices."""
        return sum(p.delta for p in self.pools if p.known)

    @property
    def unpriced(self) -> tuple[PoolCostChange, ...]:
        return tuple(p for p in self.pools if not p.known)

    @property
    def estimate(self) -> bool:
        return any(c is not None and c.estimate for p in self.pools for c in (p.before, p.after))


def pool_usage_from_output(name: str, value: Any, hours: float | None = None) -> PoolUsage | None:
    """One entry of the `gpu_capacity` output; None when it is not a pool description."""
    if not isinstance(value, Mapping):
        return None
    try:
        kind = str(value["capacity"])
        return PoolUsage(
            name=name,
            cloud=str(value["cloud"]),
            capacity_kind=kind,
            instance_type=str(value["instance_type"]),
            gpus_per_instance=int(value["gpus_per_instance"]),
            instances=int(value["instances"]),
            # A reservation is billed all month whatever the pool's expected hours.
            hours_per_month=None if kind == "reserved" else hours,
        )
    except (KeyError, TypeError, ValueError):
        return None


def pools_from_output(value: Any, hours: Mapping[str, float] | None = None) -> dict[str, PoolUsage]:
    """The pools of a `gpu_capacity` output value (before or after), by name."""
    if not isinstance(value, Mapping):
        return {}
    hours = hours or {}
    found = {str(n): pool_usage_from_output(str(n), v, hours.get(str(n))) for n, v in value.items()}
    return {n: u for n, u in found.items() if u is not None}


def cost_change(before: Mapping[str, PoolUsage], after: Mapping[str, PoolUsage], price: Pricer) -> CostChange:
    """Per pool: monthly cost before and after; pools whose usage is unchanged are left out."""
    changes = []
    for name in sorted(before.keys() | after.keys()):
        b, a = before.get(name), after.get(name)
        if b == a:
            continue
        changes.append(
            PoolCostChange(
                name, None if b is None else pool_cost(b, price), None if a is None else pool_cost(a, price)
            )
        )
    return CostChange(tuple(changes))


def plan_regions(variables: Mapping[str, Any]) -> dict[str, str]:
    """Each cloud's region from the plan's root variables `aws` / `gcp` (the rendered tfvars)."""
    regions = {}
    for cloud in ("aws", "gcp"):
        value = variables.get(cloud)
        if isinstance(value, Mapping) and isinstance(value.get("region"), str):
            regions[cloud] = value["region"]
    return regions


def plan_cost_change(
    output_before: Any, output_after: Any, price: Pricer, hours: Mapping[str, float] | None = None
) -> CostChange:
    """The monthly cost change of a plan from its `gpu_capacity` output before/after.

    `hours` gives on-demand/spot pools their expected hours a month (missing: 730 h, the upper bound).
    """
    return cost_change(pools_from_output(output_before, hours), pools_from_output(output_after, hours), price)


# --- rendering (shared by `pyctl cost`, the terminal plan summary and the PR comment) --------------


def money(amount: float, *, signed: bool = False) -> str:
    """`$1,234` (whole dollars from $100 up, cents below); `signed` adds + / - for deltas."""
    sign = ("+" if amount > 0 else "-" if amount < 0 else "±") if signed else ("-" if amount < 0 else "")
    value = abs(amount)
    body = f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"
    return f"{sign}${body}"


def _side(cost: PoolCost | None) -> str:
    if cost is None:
        return "-"
    if cost.missing:
        return "?"
    return money(cost.monthly)


def cost_change_rows(change: CostChange) -> list[tuple[str, str, str, str]]:
    """(pool, before, after, delta) per pool, money formatted; unpriced pools show `?`."""
    rows = []
    for p in change.pools:
        delta = money(p.delta, signed=True) if p.known else "?"
        rows.append((p.pool, _side(p.before), _side(p.after), delta))
    return rows


def _notes(change: CostChange) -> list[str]:
    notes = [
        f"{p.pool}: {c.missing}; add pricing.overrides in env.yaml"
        for p in change.unpriced
        for c in (p.before, p.after)
        if c is not None and c.missing
    ]
    if change.estimate:
        notes.append("includes estimated prices (see docs/cost.md)")
    return notes


def cost_change_text(change: CostChange) -> list[str]:
    """Lines for the terminal plan summary (empty when no pool's cost changes)."""
    if not change.pools:
        return []
    lines = [f"Monthly cost change: {money(change.total, signed=True)}/month"]
    lines += [f"  {pool}: {b} -> {a} ({d})" for pool, b, a, d in cost_change_rows(change)]
    lines += [f"  note: {n}" for n in _notes(change)]
    return lines


def cost_change_markdown(change: CostChange) -> list[str]:
    """Lines for the pull-request comment (empty when no pool's cost changes)."""
    if not change.pools:
        return []
    out = [f"#### Monthly cost change: {money(change.total, signed=True)}/month", ""]
    out += ["| pool | before | after | change |", "|---|---:|---:|---:|"]
    out += [f"| {pool} | {b} | {a} | {d} |" for pool, b, a, d in cost_change_rows(change)]
    out += [f"- {n}" for n in _notes(change)]
    out.append("")
    return out

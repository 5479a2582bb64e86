"""Idle reclaim: a simulated week of a mixed GPU fleet, watched every 15 minutes by our verdict and the seed's.

    .venv/bin/python benchmarks/idle_reclaim.py [--days 7] [--scale 1] [--seed 20] [--restart-minutes 30]

The fleet (seeded; `--scale` multiplies every kind): busy training, forgotten (idle after a few hours), bursty
inference/dev sessions, nightly-idle (weekday office hours), one busy GPU of eight, slow-booting (metrics start
late, the model loads for 20-45 minutes at 0 %), metric gaps (agent outages on working nodes) and reserved
capacity (tagged `pyctl:capacity=reserved`). Each instance has a *truth* schedule: for every minute it is
`working` (a job or a person needs it: includes its boot and model load, the quiet minutes of a session, a job
on one GPU of eight, minutes whose metrics were lost) or `idle` (nobody needs it). Each running GPU reports one
datapoint a minute (the period maximum the CloudWatch agent's series gives at 60 s), except where the agent has
not started yet or drops data.

Two watchdogs, both evaluated every 15 minutes over the last 30 minutes with a 5 % threshold:

- **ours**: the real `pyctl.core.watchdog.run_pass` with default `pyctl.core.idle.Settings` (max per GPU,
  coverage >= 90 %, minimum uptime 20 min, reserved capacity left running and reported, at most 10 actions
  per pass), over a simulated `WatchdogCloud` that hands it one `GpuSeries` per GPU as the AWS adapter does.
- **seed**: the first build's algorithm as issue 6 describes it (its code predates this repository's
  history: the first commit here, 4c81c0b, already has the per-GPU maximum): one average over every
  datapoint of the instance in the window (all GPUs together, one GetMetricStatistics per instance), idle if
  below the threshold, no datapoints counted as idle, no minimum uptime, reserved capacity stopped like the
  rest, no cap.

A stopped instance starts again (and boots again) at the next minute its schedule is `working`; after a
wrongful stop its user notices and starts it `--restart-minutes` later (default 30) if it is still needed.

Definitions (also in benchmarks/RESULTS.md):

- **reclaimable GPU-hours**: the GPU-hours of the schedule's `idle` minutes on instances that are not
  reserved (what an always-right watchdog that stopped instantly could save). Idle reserved GPU-hours are
  shown apart: stopping a reserved instance saves nothing.
- **reclaimed**: `idle` GPU-minutes during which the watchdog had the instance stopped (non-reserved only),
  as a share of the reclaimable ones. The `window oracle` row is a reference, not a bound: it stops at the
  first evaluation whose whole window was `idle` in truth (a watchdog reading metrics can stop a
  little earlier, when the window's first minutes were a working node's quiet tail).
- **wrongful stop**: a stop at an evaluation minute whose truth is `working` (of any instance, reserved or
  not). **work lost**: the `working` GPU-hours during which the instance was stopped (the reboot and model
  reload after the restart come on top and are not counted).
- **stops of reserved**: any stop of a reserved instance; it saves $0 whatever the truth.
- **dollars**: instance-hours reclaimed times the instance type's on-demand list price in us-east-1 from the
  catalog (`pyctl.catalog.prices.quote`), reserved counted as $0; work lost valued the same way.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pyctl.core.idle import CAPACITY_TAG, OPT_IN_TAG, Decision, GpuSeries, Instance, Settings, Window
from pyctl.core.watchdog import Candidates, Utilization, run_pass

EVERY_MINUTES = 15
START = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # a Monday
NAN = float("nan")

KINDS = ("busy", "forgotten", "bursty", "nightly", "one-of-eight", "slow-boot", "metric-gaps", "reserved")
# kind -> (instances at scale 1, instance types to draw from)
FLEET: dict[str, tuple[int, tuple[str, ...]]] = {
    "busy": (6, ("p5.48xlarge", "p4d.24xlarge", "g5.12xlarge")),
    "forgotten": (4, ("g6e.12xlarge", "g5.2xlarge", "p5.48xlarge")),
    "bursty": (6, ("g5.xlarge", "g6.xlarge", "g6e.xlarge")),
    "nightly": (6, ("g6e.12xlarge", "g5.12xlarge", "g6.12xlarge")),
    "one-of-eight": (3, ("p4d.24xlarge", "g5.48xlarge", "p5.48xlarge")),
    "slow-boot": (4, ("g6e.48xlarge", "p4de.24xlarge")),
    "metric-gaps": (4, ("g5.12xlarge", "p4d.24xlarge")),
    "reserved": (4, ("p5.48xlarge",)),
}


@dataclass
class Node:
    """One simulated instance: its truth, its price and, during a run, its state and observed series."""

    name: str
    kind: str
    itype: str
    gpus: int
    price: float
    reserved: bool
    work: bytearray  # 1 = working, per minute
    util: list[array]  # per GPU, per minute: utilization when working and booted
    dropped: bytearray  # 1 = the agent loses this minute's datapoint
    metrics_delay: tuple[int, int]  # minutes after a (re)start before the agent reports
    ready_delay: tuple[int, int]  # minutes after a (re)start before the job uses the GPU
    launched_before: int  # minutes before the simulation start of the first launch
    # run state
    running: bool = True
    launch: int = 0  # minute of the last (re)start (negative: before the simulation)
    boot_metrics: int = 0
    boot_ready: int = 0
    restart_at: int = -1
    observed: list[array] = field(default_factory=list)


def _segments(rng: random.Random, minutes: int, on: tuple[int, int], off: tuple[int, int]) -> bytearray:
    """Alternating working/idle stretches with lengths drawn from the given ranges (minutes)."""
    work = bytearray(minutes)
    m, state = 0, 1
    while m < minutes:
        length = rng.randint(*(on if state else off))
        if state:
            work[m : m + length] = b"\x01" * min(length, minutes - m)
        m += length
        state ^= 1
    return work


def _office(rng: random.Random, minutes: int) -> bytearray:
    """Weekdays from about 08:00 to about 19:00 (jittered per day); nights and weekends idle."""
    work = bytearray(minutes)
    for day in range(minutes // 1440 + 1):
        if day % 7 >= 5:
            continue
        begin = day * 1440 + rng.randint(7 * 60, 9 * 60 + 30)
        end = day * 1440 + rng.randint(17 * 60 + 30, 20 * 60)
        work[begin : min(end, minutes)] = b"\x01" * max(0, min(end, minutes) - begin)
    return work


def _sessions(rng: random.Random, minutes: int) -> bytearray:
    """2-5 sessions of 1-4 h a weekday, 0-1 at weekends."""
    work = bytearray(minutes)
    for day in range(minutes // 1440 + 1):
        for _ in range(rng.randint(0, 1) if day % 7 >= 5 else rng.randint(2, 5)):
            begin = day * 1440 + rng.randint(6 * 60, 22 * 60)
            end = min(begin + rng.randint(60, 240), minutes)
            work[begin:end] = b"\x01" * max(0, end - begin)
    return work


def _busy_util(rng: random.Random, minutes: int) -> array:
    """Training: 70-100 % with a 2-6 minute dip (checkpoint, evaluation) every 60-120 minutes."""
    out = array("f", (rng.uniform(70, 100) for _ in range(minutes)))
    m = rng.randint(0, 120)
    while m < minutes:
        for k in range(m, min(m + rng.randint(2, 6), minutes)):
            out[k] = rng.uniform(0, 3)
        m += rng.randint(60, 120)
    return out


def _bursty_util(rng: random.Random, minutes: int) -> array:
    """Requests in bursts: 1-3 minutes at 30-90 %, quiet gaps drawn from an exponential of mean 8 minutes."""
    out = array("f", bytes(4 * minutes))
    m = int(rng.expovariate(1 / 8))
    while m < minutes:
        level = rng.uniform(30, 90)
        for k in range(m, min(m + rng.randint(1, 3), minutes)):
            out[k] = level
        m += 3 + int(rng.expovariate(1 / 8))
    return out


def _outages(
    rng: random.Random, minutes: int, count: tuple[int, int], length: tuple[int, int], p: float
) -> bytearray:
    dropped = bytearray(1 if rng.random() < p else 0 for _ in range(minutes))
    for _ in range(round(rng.randint(*count) * minutes / 10080)):
        begin = rng.randrange(minutes)
        end = min(begin + rng.randint(*length), minutes)
        dropped[begin:end] = b"\x01" * (end - begin)
    return dropped


def build_fleet(seed: int, days: float, scale: float) -> list[Node]:
    from pyctl.catalog import load_catalog
    from pyctl.catalog.prices import quote

    catalog = load_catalog()
    rng = random.Random(seed)
    minutes = int(days * 1440)
    nodes: list[Node] = []
    for kind in KINDS:
        count, types = FLEET[kind]
        for i in range(max(1, round(count * scale))):
            itype = types[i % len(types)]
            spec = catalog.instance_type("aws", itype)
            assert spec is not None and spec.gpu_count, itype
            gpus = spec.gpu_count
            hourly = quote(spec, "on_demand", region="us-east-1", gpus=gpus)
            assert hourly is not None, itype
            metrics_delay, ready_delay = (1, 3), (3, 8)
            dropped = _outages(rng, minutes, (0, 0), (0, 0), 0.005)
            util = [_busy_util(rng, minutes) for _ in range(gpus)]
            reserved = False
            if kind == "busy":
                work = bytearray(b"\x01" * minutes)
            elif kind == "forgotten":
                work = bytearray(minutes)
                first = min(rng.randint(60, 480), minutes)
                work[:first] = b"\x01" * first
            elif kind == "bursty":
                work = _sessions(rng, minutes)
                util = [_bursty_util(rng, minutes) for _ in range(gpus)]
            elif kind == "nightly":
                work = _office(rng, minutes)
            elif kind == "one-of-eight":
                work = _segments(rng, minutes, (12 * 60, 72 * 60), (4 * 60, 24 * 60))
                util = [array("f", (rng.uniform(15, 35) for _ in range(minutes)))] + [
                    array("f", bytes(4 * minutes)) for _ in range(gpus - 1)
                ]
            elif kind == "slow-boot":
                work = _segments(rng, minutes, (3 * 60, 10 * 60), (60, 6 * 60))
                metrics_delay, ready_delay = (6, 12), (20, 45)
            elif kind == "metric-gaps":
                work = bytearray(b"\x01" * minutes) if i % 2 == 0 else _office(rng, minutes)
                dropped = _outages(rng, minutes, (3, 6), (20, 120), 0.05)
            else:  # reserved
                reserved = True
                if i % 2 == 0:
                    work = bytearray(b"\x01" * minutes)
                    gap = rng.randrange(max(1, minutes - 1440))
                    work[gap : gap + 1440] = bytes(min(1440, minutes - gap))
                else:
                    work = _office(rng, minutes)
            nodes.append(
                Node(
                    name=f"{kind}-{i}",
                    kind=kind,
                    itype=itype,
                    gpus=gpus,
                    price=hourly.hourly,
                    reserved=reserved,
                    work=work,
                    util=util,
                    dropped=dropped,
                    metrics_delay=metrics_delay,
                    ready_delay=ready_delay,
                    launched_before=rng.randint(120, 3 * 1440),
                )
            )
    return nodes


class SimCloud:
    """The `WatchdogCloud` verbs over the simulation: running instances, their per-GPU series, stops."""

    name = "sim"

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.minute = 0
        self.stopped: list[str] = []
        self.reserved_reports = 0  # idle reserved instances reported (alert, no action), over all passes

    def instance(self, node: Node) -> Instance:
        tags = {OPT_IN_TAG: "true", "pyctl:env": "bench"}
        if node.reserved:
            tags[CAPACITY_TAG] = "reserved"
        return Instance(
            instance_id=node.name,
            launch_time=START + timedelta(minutes=node.launch),
            tags=tags,
            region="us-east-1",
            zone="us-east-1a",
            instance_type=node.itype,
            hourly_cost=node.price,
            expected_gpus=node.gpus,
        )

    def list_candidates(self, settings: Settings, *, opt_in_only: bool) -> Candidates:
        return Candidates([self.instance(n) for n in self.nodes.values() if n.running])

    def read_utilization(
        self, instances: Sequence[Instance], window: Window, settings: Settings
    ) -> Utilization:
        first = int((window.start - START).total_seconds()) // 60
        last = int((window.end - START).total_seconds()) // 60
        out: dict[str, list[GpuSeries] | None] = {}
        for inst in instances:
            node = self.nodes[inst.instance_id]
            series = []
            for g, observed in enumerate(node.observed):
                stamps, values = [], []
                for m in range(max(first, 0), last):
                    v = observed[m]
                    if not math.isnan(v):
                        stamps.append(START + timedelta(minutes=m))
                        values.append(float(v))
                if values:  # a GPU without datapoints has no series at all (ListMetrics finds none)
                    series.append(GpuSeries(str(g), stamps, values))
            out[inst.key] = series
        return Utilization(out, [len(instances)])

    def act(
        self, planned: Sequence[tuple[Instance, Decision]], now: datetime, dry_run: bool
    ) -> list[Decision]:
        done = []
        for inst, decision in planned:
            if decision.verdict == "idle" and inst.reserved and decision.alert:
                self.reserved_reports += 1
            if decision.action in ("stop", "terminate", "scale-in"):
                self.stopped.append(inst.instance_id)
                decision = replace(decision, outcome="done")
            done.append(decision)
        return done


def seed_verdict(node: Node, now: int, idle_minutes: int, threshold: float) -> bool:
    """The seed's idle test: the average of every datapoint of the instance in the window (none: idle)."""
    values = [v for obs in node.observed for v in obs[max(now - idle_minutes, 0) : now] if not math.isnan(v)]
    return not values or sum(values) / len(values) < threshold


@dataclass
class Tally:
    reclaimed_gpu_min: float = 0.0
    reclaimed_usd: float = 0.0
    lost_gpu_min: float = 0.0
    lost_usd: float = 0.0
    wrongful: Counter[str] = field(default_factory=Counter)
    stops: Counter[str] = field(default_factory=Counter)
    reserved_stops: int = 0
    reserved_reports: int = 0  # ours only: passes that reported an idle reserved instance
    reclaimed_by_kind: Counter[str] = field(default_factory=Counter)


def _start(node: Node, minute: int, seed: int) -> None:
    """(Re)start: boot delays drawn per node and minute, so every algorithm sees the same boot for a restart."""
    rng = random.Random(f"{seed}-{node.name}-{minute}")
    node.running = True
    node.launch = minute
    node.boot_metrics = minute + rng.randint(*node.metrics_delay)
    node.boot_ready = max(node.boot_metrics, minute + rng.randint(*node.ready_delay))
    node.restart_at = -1


def _next_work(node: Node, minute: int) -> int:
    """The first working minute at or after `minute` (-1: never again)."""
    return node.work.find(1, minute)


def simulate(
    nodes: list[Node], algorithm: str, seed: int, restart_minutes: int, settings: Settings | None = None
) -> Tally:
    """Run the week minute by minute; evaluate every 15 minutes; return the tally."""
    minutes = len(nodes[0].work)
    rng = random.Random(seed)  # the noise of idle GPUs (0-1 %)
    settings = settings or Settings(env="bench")
    cloud = SimCloud(nodes)
    tally = Tally()
    for node in nodes:
        node.observed = [array("f", [NAN]) * minutes for _ in range(node.gpus)]
        _start(node, -node.launched_before, seed)
    for m in range(minutes + 1):
        if m and m % EVERY_MINUTES == 0 and m >= settings.idle_minutes:
            stopped = _evaluate(nodes, cloud, algorithm, settings, m)
            for node in stopped:
                _stop(node, m, tally, restart_minutes)
        if m == minutes:
            break
        for node in nodes:
            if not node.running:
                if node.restart_at == m:
                    _start(node, m, seed)
                else:
                    _account_stopped(node, m, tally)
                    continue
            if m < node.boot_metrics or node.dropped[m]:
                continue
            working = node.work[m] and m >= node.boot_ready
            for g in range(node.gpus):
                node.observed[g][m] = node.util[g][m] if working else rng.uniform(0, 1)
    tally.reserved_reports = cloud.reserved_reports
    return tally


def _evaluate(nodes: list[Node], cloud: SimCloud, algorithm: str, settings: Settings, m: int) -> list[Node]:
    now = START + timedelta(minutes=m)
    if algorithm == "ours":
        cloud.stopped = []
        run_pass(cloud, settings, now)
        return [cloud.nodes[name] for name in cloud.stopped]
    if algorithm == "seed":
        return [
            n
            for n in nodes
            if n.running and seed_verdict(n, m, settings.idle_minutes, settings.threshold_percent)
        ]
    # oracle: the whole window idle in truth, never reserved
    window = settings.idle_minutes
    return [n for n in nodes if n.running and not n.reserved and not any(n.work[m - window : m])]


def _stop(node: Node, m: int, tally: Tally, restart_minutes: int) -> None:
    node.running = False
    tally.stops[node.kind] += 1
    if node.reserved:
        tally.reserved_stops += 1
    wrongful = m < len(node.work) and node.work[m]
    if wrongful:
        tally.wrongful[node.kind] += 1
        node.restart_at = _next_work(node, min(m + restart_minutes, len(node.work) - 1))
    else:
        node.restart_at = _next_work(node, m) if m < len(node.work) else -1


def _account_stopped(node: Node, m: int, tally: Tally) -> None:
    if node.work[m]:
        tally.lost_gpu_min += node.gpus
        tally.lost_usd += node.price / 60
    elif not node.reserved:
        tally.reclaimed_gpu_min += node.gpus
        tally.reclaimed_usd += node.price / 60
        tally.reclaimed_by_kind[node.kind] += node.gpus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the instances of every kind")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--restart-minutes",
        type=int,
        default=30,
        help="minutes before a user restarts a wrongly stopped node",
    )
    parser.add_argument(
        "--idle-minutes", type=int, default=30, help="the window, both watchdogs (default 30)"
    )
    parser.add_argument(
        "--min-uptime-minutes", type=int, default=20, help="ours only (the seed has none; default 20)"
    )
    args = parser.parse_args(argv)
    if args.days <= 0 or args.scale <= 0 or args.restart_minutes < 1:
        parser.error("--days and --scale must be positive, --restart-minutes at least 1")
    try:
        settings = Settings(
            env="bench", idle_minutes=args.idle_minutes, min_uptime_minutes=args.min_uptime_minutes
        )
    except ValueError as exc:
        parser.error(str(exc))
    started = time.perf_counter()
    results = {}
    for algorithm in ("ours", "seed", "oracle"):
        nodes = build_fleet(args.seed, args.days, args.scale)  # same truth for each algorithm
        results[algorithm] = simulate(nodes, algorithm, args.seed, args.restart_minutes, settings)
    nodes = build_fleet(args.seed, args.days, args.scale)
    reclaimable = sum(n.gpus * (len(n.work) - sum(n.work)) for n in nodes if not n.reserved) / 60
    reclaimable_usd = sum(n.price * (len(n.work) - sum(n.work)) for n in nodes if not n.reserved) / 60
    reserved_idle = sum(n.gpus * (len(n.work) - sum(n.work)) for n in nodes if n.reserved) / 60
    gpu_hours = sum(n.gpus * len(n.work) for n in nodes) / 60
    print(
        f"idle reclaim: {len(nodes)} instances, {sum(n.gpus for n in nodes)} GPUs, {args.days:g} days, "
        f"seed {args.seed}, evaluated every {EVERY_MINUTES} min over a {args.idle_minutes} min window, "
        f"minimum uptime {args.min_uptime_minutes} min (ours), restart after a "
        f"wrongful stop {args.restart_minutes} min"
    )
    print(
        f"fleet GPU-hours {gpu_hours:,.0f}; reclaimable (idle, not reserved) {reclaimable:,.0f} GPU-h = "
        f"${reclaimable_usd:,.0f}; idle reserved {reserved_idle:,.0f} GPU-h (stopping saves $0)"
    )
    print()
    header = (
        f"{'watchdog':<16} {'reclaimed GPU-h':>15} {'share':>6} {'$ saved':>9} {'wrongful stops':>14} "
        f"{'work lost GPU-h':>15} {'$ work lost':>11} {'reserved stops':>14}"
    )
    print(header)
    print("-" * len(header))
    labels = {"ours": "ours (run_pass)", "seed": "seed (average)", "oracle": "window oracle"}
    for algorithm, t in results.items():
        print(
            f"{labels[algorithm]:<16} {t.reclaimed_gpu_min / 60:>15,.0f} "
            f"{t.reclaimed_gpu_min / 60 / max(reclaimable, 1e-9):>6.1%} {t.reclaimed_usd:>9,.0f} "
            f"{sum(t.wrongful.values()):>14} {t.lost_gpu_min / 60:>15,.1f} {t.lost_usd:>11,.0f} "
            f"{t.reserved_stops:>14}"
        )
    print(
        f"ours left reserved capacity running and reported it idle {results['ours'].reserved_reports} times "
        "(alert, no action)"
    )
    print()
    header = f"{'kind':<13} {'reclaimable GPU-h':>17}" + "".join(
        f" {a + ' share':>12} {a + ' wrongful':>15}" for a in ("ours", "seed")
    )
    print(header)
    print("-" * len(header))
    for kind in KINDS:
        members = [n for n in nodes if n.kind == kind]
        possible = sum(n.gpus * (len(n.work) - sum(n.work)) for n in members if not n.reserved) / 60
        row = f"{kind:<13} {possible:>17,.0f}"
        for a in ("ours", "seed"):
            got = results[a].reclaimed_by_kind[kind] / 60
            share = f"{got / possible:.1%}" if possible else "-"
            row += f" {share:>12} {results[a].wrongful[kind]:>15}"
        print(row)
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

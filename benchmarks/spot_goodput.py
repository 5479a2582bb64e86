"""Spot goodput: a training job under the spot advisor's interruption buckets, three checkpoint strategies.

    .venv/bin/python benchmarks/spot_goodput.py [--trials 4000] [--seed 20] [--checkpoint-gb 30] ...

A seeded Monte-Carlo simulation (`--trials` jobs per bucket and strategy, the same interruption draws for
every strategy) of one synchronous data-parallel job: `--nodes` spot instances, `--job-hours` of training,
stopped whole when any node is interrupted. Strategies:

- **none**: no checkpoint; an interruption restarts the job from step 0.
- **periodic**: a checkpoint every `--checkpoint-minutes` of training (training pauses for the local save,
  size / `--save-gbps`), uploaded in the background one at a time (the newest not yet uploaded goes next);
  the notice is ignored.
- **ours** (`pyctl-agent watch`, docs/spot-recovery.md): the same periodic checkpoints and continuous
  upload, plus the notice: the agent reads IMDS every `--poll-seconds` *between* uploads (its tick is one
  thread: a notice that arrives while an upload is in flight is seen when that upload ends), signals the
  trainer, which finishes its step (up to `--step-seconds`) and saves; the agent uploads that checkpoint if it
  is COMPLETE before the deadline (termination minus `--upload-margin-seconds`), else the newest complete
  one not yet uploaded. An upload counts only if it ends before termination (manifest last: an unfinished
  upload does not exist).

Assumptions (the model): interruptions arrive per node as a Poisson process whose monthly (730 h) probability
is the bucket's midpoint (<5%: 2.5%, 5-10%: 7.5%, 10-15%: 12.5%, 15-20%: 17.5%, >20%: `--over-20` = 25%),
so the job's rate is `--nodes` times that; every interruption gives the 2-minute notice (`--notice-seconds`)
unless `--missed-notice` says otherwise (then the node is gone at once); the recovery function launches the
replacement on the notice and it boots in `--boot-minutes`; restore starts when both the boot is done and the
old node is gone, and downloads the checkpoint at `--download-mbps` (no restore without a checkpoint); the
first boot of the job is paid too; all nodes are paid for the whole wall time (the survivors wait, the
replacement overlaps the notice); interruptions can also hit a boot or a restore. Upload and download rates
default to 425 MB/s: `pyctl-agent fetch-model`'s median on the read-only sendfile server in the model-fetch
benchmark (issue 20 item 4; benchmarks/RESULTS.md's moto table shows 791 MB/s), used for uploads too (no upload
figure has been measured: override with `--upload-mbps`).

Figures: **goodput** = useful GPU-hours / paid GPU-hours over all trials (= the trials' job hours over their
wall hours; in brackets the 10th percentile of single jobs' goodput), **lost per
interruption** = the mean minutes between the step of the checkpoint resumed from and the termination (for
ours: the notice window after the save began, whether the trainer was drained or not: paid, nothing kept), and
the cost of a useful GPU-hour on spot relative to on-demand run without checkpoints or interruptions (catalog
prices of `--instance-type`, us-east-1, the catalog's typical spot discount).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

BUCKETS: tuple[tuple[str, float], ...] = (
    ("<5%", 0.025),
    ("5-10%", 0.075),
    ("10-15%", 0.125),
    ("15-20%", 0.175),
    (">20%", 0.25),
)
STRATEGIES = ("none", "periodic", "ours")
MONTH_HOURS = 730.0


@dataclass(frozen=True)
class Model:
    """Every input, in hours and GB (1 GB = 10^9 bytes, MB/s = 10^6 bytes a second)."""

    job_hours: float
    nodes: int
    checkpoint_every: float  # hours of training between checkpoints
    save: float  # local save pause, hours
    upload: float  # hours to upload one checkpoint
    download: float  # hours to restore one
    boot: float  # replacement boot, hours
    notice: float  # notice lead, hours
    poll: float
    step: float
    margin: float
    missed_notice: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Model:
        gb = args.checkpoint_gb
        return cls(
            job_hours=args.job_hours,
            nodes=args.nodes,
            checkpoint_every=args.checkpoint_minutes / 60,
            save=gb / args.save_gbps / 3600,
            upload=gb * 1000 / args.upload_mbps / 3600,
            download=gb * 1000 / args.download_mbps / 3600,
            boot=args.boot_minutes / 60,
            notice=args.notice_seconds / 3600,
            poll=args.poll_seconds / 3600,
            step=args.step_seconds / 3600,
            margin=args.upload_margin_seconds / 3600,
            missed_notice=args.missed_notice,
        )


@dataclass
class Outcome:
    wall: float = 0.0
    interruptions: int = 0
    lost: float = 0.0  # hours of training discarded, summed over interruptions


class Segment:
    """One run of the job from a restore (or the start) until it ends or is interrupted.

    Training starts at wall time `w0` from progress `p0`; with checkpoints, cycle k (k >= 1) trains
    `every` hours, then pauses `save` hours: checkpoint k is COMPLETE at w0 + k * (every + save)."""

    def __init__(self, w0: float, p0: float, every: float, save: float) -> None:
        self.w0, self.p0, self.every, self.save = w0, p0, every, save

    def progress(self, t: float) -> float:
        tau = max(0.0, t - self.w0)
        if math.isinf(self.every):
            return self.p0 + tau
        k, r = divmod(tau, self.every + self.save)
        return self.p0 + k * self.every + min(r, self.every)

    def finish(self, target: float) -> float:
        need = target - self.p0
        if math.isinf(self.every):
            return self.w0 + need
        k = math.ceil(need / self.every) - 1
        return self.w0 + k * (self.every + self.save) + (need - k * self.every)

    def complete_time(self, k: int) -> float:
        return self.w0 + k * (self.every + self.save)

    def uploads(self, until: float, upload: float) -> list[tuple[float, float, int]]:
        """(start, end, k) of the background uploads begun before `until`, newest-first choice each time."""
        out: list[tuple[float, float, int]] = []
        if math.isinf(self.every):
            return out
        free, last = self.w0, 0
        while True:
            newest = max(0, int((free - self.w0) // (self.every + self.save)))
            if newest <= last:  # nothing new: wait for the next checkpoint
                start, k = self.complete_time(last + 1), last + 1
            else:
                start, k = free, newest
            if start >= until:
                return out
            out.append((start, start + upload, k))
            free, last = start + upload, k


def run_job(m: Model, strategy: str, rate: float, rng: random.Random, jitter: random.Random) -> Outcome:
    """One job to completion; `rate` = interruptions per wall hour for the whole job."""
    every = math.inf if strategy == "none" else m.checkpoint_every
    save = 0.0 if strategy == "none" else m.save
    out = Outcome()
    durable = 0.0  # progress of the checkpoint a restore would load
    start = 0.0  # when the current (replacement) node set starts booting
    restore_from = 0.0  # earliest time the restore may begin (the old node is gone)
    while True:
        ready = max(start + m.boot, restore_from)
        w0 = ready + (m.download if durable > 0 else 0.0)
        seg = Segment(w0, durable, every, save)
        end = seg.finish(m.job_hours)
        notice_at = start + rng.expovariate(rate)  # memoryless: redrawn per segment
        if notice_at >= end:
            out.wall = end
            return out
        out.interruptions += 1
        missed = rng.random() < m.missed_notice
        gone = notice_at if missed else notice_at + m.notice
        reached = seg.progress(gone)
        if notice_at >= w0:  # training had started: what is durable at `gone`?
            durable = max(durable, _durable(m, strategy, seg, notice_at, gone, missed, jitter))
        out.lost += max(0.0, reached - durable)
        start, restore_from = notice_at, gone


def _durable(
    m: Model, strategy: str, seg: Segment, notice_at: float, gone: float, missed: bool, rng: random.Random
) -> float:
    """Progress held by the newest checkpoint whose upload ended by `gone` (0.0: none in this segment)."""
    if strategy == "none":
        return 0.0
    uploads = seg.uploads(gone, m.upload)
    if strategy == "periodic" or missed:
        return max((seg.p0 + k * seg.every for _, end, k in uploads if end <= gone), default=0.0)
    # The agent sees the notice at its first tick after the upload in flight (if any) ends; a tick reads the
    # notice before it uploads, so no upload starts after the notice but that one.
    busy_until = max((end for begin, end, _ in uploads if begin <= notice_at < end), default=notice_at)
    seen = busy_until + rng.uniform(0, m.poll)
    deadline = gone - m.margin
    best = max(
        (seg.p0 + k * seg.every for b, end, k in uploads if b <= notice_at and end <= gone), default=0.0
    )
    if seen >= gone:
        return best
    # Signal; the trainer ends its step, then saves (a periodic save in progress delays it the same way).
    save_begins = seen + rng.uniform(0, m.step)
    complete = save_begins + m.save
    if complete <= deadline:
        if complete + m.upload <= gone:
            best = max(best, seg.progress(save_begins))
        return best
    # No new checkpoint by the deadline: upload the newest complete one not uploaded yet.
    started = {k for b, _, k in uploads if b <= notice_at}
    sync_at = max(seen, deadline)
    k = max(0, int((sync_at - seg.w0) // (seg.every + seg.save)))
    if k > 0 and k not in started and sync_at + m.upload <= gone:
        best = max(best, seg.p0 + k * seg.every)
    return best


def simulate(
    m: Model, trials: int, seed: int, monthly: float
) -> dict[str, tuple[float, float, float, float]]:
    """strategy -> (goodput, lost minutes per interruption, interruptions per job, p10 of the jobs' goodput).

    Goodput is the fleet's: all trials' useful hours over all their paid hours (not a mean of ratios)."""
    rate = m.nodes * -math.log(1 - monthly) / MONTH_HOURS
    results = {}
    for strategy in STRATEGIES:
        # Interruption times and the agent's timing jitter from separate seeded streams, per bucket.
        rng, jitter = random.Random(f"{seed}-{monthly}"), random.Random(f"{seed}-{monthly}-jitter")
        goodputs, lost, count, wall = [], 0.0, 0, 0.0
        for _ in range(trials):
            o = run_job(m, strategy, rate, rng, jitter)
            goodputs.append(m.job_hours / o.wall)
            wall += o.wall
            lost += o.lost
            count += o.interruptions
        goodputs.sort()
        results[strategy] = (
            trials * m.job_hours / wall,
            (lost / count * 60) if count else 0.0,
            count / trials,
            goodputs[trials // 10],
        )
    return results


def relative_cost(instance_type: str) -> float | None:
    """Spot price / on-demand price of the instance type in the catalog (us-east-1), None if unknown."""
    from pyctl.catalog import load_catalog
    from pyctl.catalog.prices import quote

    spec = load_catalog().instance_type("aws", instance_type)
    if spec is None or spec.gpu_count is None:
        return None
    od = quote(spec, "on_demand", region="us-east-1", gpus=spec.gpu_count)
    spot = quote(spec, "spot", region="us-east-1", gpus=spec.gpu_count)
    return spot.hourly / od.hourly if od and spot else None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=4000, help="simulated jobs per bucket and strategy")
    p.add_argument("--seed", type=int, default=20)
    p.add_argument("--job-hours", type=float, default=168.0, help="training hours the job needs")
    p.add_argument(
        "--nodes", type=int, default=16, help="spot instances in the job (any interruption stops it)"
    )
    p.add_argument("--instance-type", default="p5.48xlarge", help="for the price ratio (catalog)")
    p.add_argument("--checkpoint-minutes", type=float, default=60.0, help="periodic checkpoint interval C")
    p.add_argument("--checkpoint-gb", type=float, default=30.0, help="checkpoint size per node")
    p.add_argument("--save-gbps", type=float, default=2.0, help="local save (NVMe write) rate")
    p.add_argument("--upload-mbps", type=float, default=425.0, help="checkpoint upload rate per node")
    p.add_argument("--download-mbps", type=float, default=425.0, help="restore rate per node")
    p.add_argument("--boot-minutes", type=float, default=4.0, help="replacement launch to ready")
    p.add_argument("--notice-seconds", type=float, default=120.0)
    p.add_argument("--poll-seconds", type=float, default=2.0, help="agent IMDS poll interval")
    p.add_argument("--step-seconds", type=float, default=5.0, help="longest training step")
    p.add_argument("--upload-margin-seconds", type=float, default=30.0)
    p.add_argument("--missed-notice", type=float, default=0.0, help="share of interruptions without a notice")
    p.add_argument("--over-20", type=float, default=0.25, help="monthly probability assumed for >20%%")
    p.add_argument("--sweep-gb", type=float, nargs="*", default=[10, 30, 60, 120], help="sizes for the sweep")
    p.add_argument("--sweep-minutes", type=float, nargs="*", default=[30, 60, 120], help="intervals (C)")
    args = p.parse_args(argv)
    positive = ("trials", "job_hours", "nodes", "checkpoint_minutes", "checkpoint_gb", "save_gbps")
    for name in (*positive, "upload_mbps", "download_mbps"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.missed_notice <= 1 or not 0.2 < args.over_20 < 1:
        p.error("--missed-notice must be in [0, 1] and --over-20 in (0.2, 1)")
    m = Model.from_args(args)
    started = time.perf_counter()
    ratio = relative_cost(args.instance_type)
    print(
        f"spot goodput: {args.nodes} nodes x {args.job_hours:g} h job, {args.trials} trials per cell, seed "
        f"{args.seed}; checkpoint {args.checkpoint_gb:g} GB per node every {args.checkpoint_minutes:g} min "
        f"(save {m.save * 3600:.0f} s, upload {m.upload * 3600:.0f} s, restore {m.download * 3600:.0f} s), "
        f"boot {args.boot_minutes:g} min, notice {args.notice_seconds:g} s"
    )
    no_interrupt = args.job_hours / (
        m.boot + Segment(0, 0, m.checkpoint_every, m.save).finish(args.job_hours)
    )
    print(
        f"without interruptions: goodput {m.job_hours / (m.boot + m.job_hours):.4f} (no checkpoints), {no_interrupt:.4f} (periodic or ours: the save pauses)"
    )
    if ratio is not None:
        print(f"{args.instance_type} spot / on-demand price (catalog, us-east-1): {ratio:.3f}")
    print()
    header = f"{'bucket':<7} {'interruptions/job':>17}" + "".join(
        f" {s + ' goodput (p10)':>22} {s + ' lost min/intr':>18}" for s in STRATEGIES
    )
    if ratio is not None:
        header += f" {'none $/useful vs OD':>20} {'ours $/useful vs OD':>20}"
    print(header)
    print("-" * len(header))
    for label, monthly in BUCKETS:
        monthly = args.over_20 if label == ">20%" else monthly
        res = simulate(m, args.trials, args.seed, monthly)
        row = f"{label:<7} {res['ours'][2]:>17.2f}"
        for s in STRATEGIES:
            goodput, lost, _, p10 = res[s]
            row += f" {f'{goodput:.4f} ({p10:.3f})':>22} {lost:>18.1f}"
        if ratio is not None:
            on_demand = m.job_hours / (m.boot + m.job_hours)  # on-demand: no interruption, no checkpoint
            row += f" {ratio / res['none'][0] * on_demand:>20.3f} {ratio / res['ours'][0] * on_demand:>20.3f}"
        print(row)
    if args.sweep_gb:
        _sweep(args, p)
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Periodic against ours in the >20% bucket over checkpoint sizes and intervals."""
    print(f"\n>20% bucket ({args.over_20:.0%} a month), by checkpoint size and interval:")
    header = f"{'GB/node':>7} {'C min':>5} {'upload s':>8} {'periodic goodput':>16} {'lost min':>8}"
    header += f" {'ours goodput':>12} {'lost min':>8} {'notice ckpt saved':>17}"
    print(header)
    print("-" * len(header))
    for gb in args.sweep_gb:
        for minutes in args.sweep_minutes:
            if gb <= 0 or minutes <= 0:
                parser.error("--sweep-gb and --sweep-minutes must be positive")
            sub = argparse.Namespace(**{**vars(args), "checkpoint_gb": gb, "checkpoint_minutes": minutes})
            m = Model.from_args(sub)
            res = simulate(m, args.trials, args.seed, args.over_20)
            saved = m.save + m.upload + m.poll + m.step <= m.notice
            print(
                f"{gb:>7g} {minutes:>5g} {m.upload * 3600:>8.0f} {res['periodic'][0]:>16.4f} "
                f"{res['periodic'][1]:>8.1f} {res['ours'][0]:>12.4f} {res['ours'][1]:>8.1f} "
                f"{'yes' if saved else 'no (too big)':>17}"
            )


if __name__ == "__main__":
    sys.exit(main())

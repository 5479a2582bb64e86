"""One watchdog pass over any cloud: the `WatchdogCloud` verbs and `run_pass`, pure, no cloud SDK.

A cloud adapter (`pyctl.clouds.aws.watchdog.AwsWatchdog`, `pyctl.clouds.gcp.watchdog.GcpWatchdog`) answers
three verbs, one method each (SkyPilot's provisioning interface is the model):

- `list_candidates`: the running instances as neutral `Instance` facts, each group's scale-in room, and
  what could not be listed (a failed region or group is an error of the pass, never an exception);
- `read_utilization`: the GPU series of the instances whose verdict needs them (None: the read failed);
- `act`: carry out the decisions (or mark them dry-run); an API error is recorded on its decision.

`run_pass` owns the order (list, read, decide, limit, act) and the result; the verdicts are `pyctl.core.idle`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from pyctl.core import idle
from pyctl.core.idle import Decision, GpuReading, GpuSeries, Instance, Settings, Window


@dataclass
class Candidates:
    """What `list_candidates` found."""

    instances: list[Instance]
    room: dict[str, int] = field(default_factory=dict)  # group budget key -> how many it may lose
    errors: list[str] = field(default_factory=list)


@dataclass
class Utilization:
    """What `read_utilization` read: series by `Instance.key` (None: could not be read) and what it cost."""

    series: Mapping[str, Sequence[GpuSeries | GpuReading] | None]
    requests: list[int] = field(default_factory=list)  # per request: queries (AWS) or instances named (GCP)
    errors: list[str] = field(default_factory=list)


@runtime_checkable
class WatchdogCloud(Protocol):
    """One cloud's watchdog verbs. Series are keyed by `Instance.key` (zone and id: unique within a pass)."""

    name: str

    def list_candidates(self, settings: Settings, *, opt_in_only: bool) -> Candidates: ...

    def read_utilization(
        self, instances: Sequence[Instance], window: Window, settings: Settings
    ) -> Utilization: ...

    def act(
        self, planned: Sequence[tuple[Instance, Decision]], now: datetime, dry_run: bool
    ) -> list[Decision]: ...


@dataclass
class RunResult:
    decisions: list[Decision]
    summary: idle.Summary
    metric_requests: list[int]  # per metric request: queries (AWS GetMetricData) or VMs named (GCP)
    errors: list[str]  # failures not tied to one instance (the pass went on)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """Any failure as one short line (its type and text): how errors of a pass are written."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UnscopedRun(ValueError):
    """A pass without `settings.env` that was not asked to cover every env."""


def run_pass(
    cloud: WatchdogCloud,
    settings: Settings,
    now: datetime,
    *,
    opt_in_only: bool = True,
    all_envs: bool = False,
) -> RunResult:
    """One watchdog pass: list candidates, read the metrics that matter, decide, limit, act.

    Scoped to `settings.env`: the adapters list only instances carrying that env's tag/label. A pass
    without an env acts on every env of the account/project, so it needs `all_envs=True` (the CLI's
    `--all-envs`); the deployed functions always run with their env.
    """
    if not settings.env and not all_envs:
        raise UnscopedRun("the watchdog needs an env (settings.env) or an explicit all_envs=True")
    if settings.env and all_envs:
        raise UnscopedRun(f"env {settings.env!r} and all_envs exclude each other")
    window = idle.metric_window(now, settings)
    found = cloud.list_candidates(settings, opt_in_only=opt_in_only)
    wanted = [i for i in found.instances if idle.needs_metrics(i, settings, now)]
    used = cloud.read_utilization(wanted, window, settings) if wanted else Utilization({})
    decided = [idle.decide(i, used.series.get(i.key), window, settings, now) for i in found.instances]
    limited = idle.limit_actions(decided, settings, found.room)
    decisions = cloud.act(list(zip(found.instances, limited, strict=True)), now, settings.dry_run)
    errors = [*found.errors, *used.errors]
    return RunResult(decisions, idle.summarize(decisions, settings.dry_run, errors), used.requests, errors)

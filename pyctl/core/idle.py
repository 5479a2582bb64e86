"""Idle-GPU verdicts and the action to take: pure, table-tested, no cloud SDK.

An instance is `idle` only if EVERY GPU's maximum utilization stayed below the threshold over the whole
window, with datapoints covering that window. Missing or partial data is `no-data` (never idle) unless the
user opts into `missing_data="idle"` for instances running longer than a grace period. Instances younger than
the minimum uptime are `young`: models take minutes to load.

The action depends on how the instance runs (standalone, spot request type, Auto Scaling group, capacity
reservation); `limit_actions` then applies the per-run cap and the per-group min-size budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Verdict = Literal["idle", "busy", "no-data", "young", "excluded"]
Action = Literal["stop", "terminate", "scale-in", "warn", "none"]
MissingData = Literal["no-data", "idle"]

VERDICTS: tuple[Verdict, ...] = ("idle", "busy", "no-data", "young", "excluded")
ACTIONS: tuple[Action, ...] = ("stop", "terminate", "scale-in", "warn", "none")

# Tags the watchdog reads (and one it writes).
OPT_IN_TAG = "AutoShutdown"  # "true" opts the instance in; absent or anything else excludes it
KEEP_UNTIL_TAG = "pyctl:keep-until"  # ISO-8601 time; the instance is left alone until then
# The pool module sets this on instances launched into a capacity reservation. AWS also reports the
# reservation in DescribeInstances (`CapacityReservationId`), which the AWS layer reads too; moto does not.
CAPACITY_TAG = "pyctl:capacity"  # value "reserved"
SPOT_TERMINATE_TAG = "pyctl:spot-terminate"  # "true": the pool allows terminating idle one-time spot
ACTED_TAG = "pyctl:watchdog-acted"  # written before acting: ISO time, makes a run idempotent per window
ENV_TAG_KEYS = ("pyctl:env", "Env", "pyctl-env")  # the env of a pool instance (AWS tags, GCP label)
# The one env tag the watchdog is scoped by (aws-gpu-pool writes it, with `Env`, on instances and groups;
# `Env` is a generic cost tag anyone may set, `pyctl:env` is ours). GCP: the `pyctl-env` label.
ENV_SCOPE_TAG = "pyctl:env"
# What `env` may be: pyctl.spec's env name (also a valid AWS tag value and GCP label value).
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
WARNED_TAG = "pyctl:watchdog-warned"  # ISO time of the warning that announces a stop (warn_minutes > 0)

# GetMetricData limits per request (AWS CloudWatch API reference).
MAX_QUERIES_PER_REQUEST = 500
MAX_DATAPOINTS_PER_REQUEST = 100_800


SettingKind = Literal["int", "float", "bool", "str"]


@dataclass(frozen=True)
class SettingSpec:
    """One watchdog setting in the one vocabulary: env.yaml's `watchdog:` name (the source), which is also the
    `Settings` field, the key of the Terraform modules' `settings` object and, upper-cased after `WATCHDOG_`,
    the function's environment variable. Bounds are inclusive unless `exclusive_minimum`."""

    name: str
    kind: SettingKind
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    # Where env.yaml holds it (dotted, under `watchdog:` unless it starts with "env."); None: core only.
    spec_path: str | None = None
    # Which Terraform watchdog modules carry it in their `settings` object.
    modules: tuple[str, ...] = ("aws", "gcp")

    @property
    def env_var(self) -> str:
        return f"WATCHDOG_{self.name.upper()}"

    def problem(self, value: Any) -> str | None:
        """Why `value` is out of bounds, or None."""
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.kind not in ("int", "float"):
            return None
        low, high = self.minimum, self.maximum
        if self.exclusive_minimum and low is not None and high is not None:
            if not low < value <= high:
                return f"{self.name} must be in ({low:g}, {high:g}], got {value}"
            return None
        if low is not None and (value <= low if self.exclusive_minimum else value < low):
            return f"{self.name} must be {'>' if self.exclusive_minimum else '>='} {low:g}, got {value}"
        if high is not None and value > high:
            return f"{self.name} must be <= {high:g}, got {value}"
        return None


# The one table: env.yaml's names, bounds and defaults (pyctl.spec.Watchdog). The env-var map, `Settings`
# and both modules' `settings` objects follow from it; tests/watchdog/test_settings_vocabulary.py fails on
# any drift between them.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("idle_minutes", "int", 30, minimum=5, maximum=1440, spec_path="idle_minutes"),
    SettingSpec(
        "threshold_percent",
        "float",
        5.0,
        minimum=0,
        maximum=100,
        exclusive_minimum=True,
        spec_path="threshold_percent",
    ),
    SettingSpec("min_uptime_minutes", "int", 20, minimum=0, maximum=1440, spec_path="min_uptime_minutes"),
    SettingSpec("missing_data", "str", "no-data", choices=("no-data", "idle"), spec_path="missing_data"),
    SettingSpec("missing_data_grace_minutes", "int", 60, minimum=0, spec_path="missing_data_grace_minutes"),
    SettingSpec("max_actions_per_run", "int", 10, minimum=0, spec_path="max_actions_per_run"),
    SettingSpec("dry_run", "bool", False, spec_path="dry_run"),
    SettingSpec("protected_env", "bool", False, spec_path="env.protected"),
    SettingSpec("act_in_protected_env", "bool", False, spec_path="act_in_protected_env"),
    # The default for pools that do not set SPOT_TERMINATE_TAG (env.yaml sets it per pool).
    SettingSpec("terminate_one_time_spot", "bool", False, modules=("aws",)),
    # Minutes between the warning (tag + notification) and the stop; 0: stop on the first idle verdict.
    SettingSpec(
        "warn_minutes", "int", 0, minimum=0, maximum=1440, spec_path="warn_minutes", modules=("aws",)
    ),
    SettingSpec("metric_namespace", "str", "CWAgent", spec_path="metric.namespace", modules=("aws",)),
    SettingSpec(
        "metric_name", "str", "nvidia_smi_utilization_gpu", spec_path="metric.name", modules=("aws",)
    ),
    # Core only: how the window is read.
    SettingSpec("period_seconds", "int", 60, minimum=60, modules=()),
    # Share of the window's periods each GPU series must have a datapoint in.
    SettingSpec("min_coverage", "float", 0.9, minimum=0, maximum=1, exclusive_minimum=True, modules=()),
    # The env whose instances the pass may touch (tag `pyctl:env` / label `pyctl-env`); "" = unscoped, which
    # `run_pass` refuses unless asked for every env explicitly. Not in the modules' `settings` object: each
    # module has its own required `env` variable (written as WATCHDOG_ENV) that also conditions its IAM.
    SettingSpec("env", "str", "", modules=()),
)
SETTING: Mapping[str, SettingSpec] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """What the watchdog considers idle and what it may do about it (fields: `SETTINGS`, same order)."""

    idle_minutes: int = 30
    threshold_percent: float = 5.0
    min_uptime_minutes: int = 20
    missing_data: MissingData = "no-data"
    missing_data_grace_minutes: int = 60
    max_actions_per_run: int = 10
    dry_run: bool = False
    protected_env: bool = False
    act_in_protected_env: bool = False
    terminate_one_time_spot: bool = False
    warn_minutes: int = 0
    metric_namespace: str = "CWAgent"
    metric_name: str = "nvidia_smi_utilization_gpu"
    period_seconds: int = 60
    min_coverage: float = 0.9
    env: str = ""

    def __post_init__(self) -> None:
        problems = [p for s in SETTINGS if (p := s.problem(getattr(self, s.name)))]
        if self.env and not ENV_NAME.match(self.env):
            problems.append(f"env must be an env name ({ENV_NAME.pattern}), got {self.env!r}")
        if self.period_seconds % 60:
            problems.append(f"period_seconds must be a multiple of 60, got {self.period_seconds}")
        elif self.idle_minutes * 60 < self.period_seconds:
            problems.append("idle_minutes must cover at least one period")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from `WATCHDOG_*` variables (the function's environment); unset ones keep defaults."""
        values: dict[str, Any] = {}
        for name, (var, kind) in ENVIRONMENT.items():
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            try:
                values[name] = _parse(raw, kind)
            except ValueError as exc:
                raise ValueError(f"{var}={raw!r}: {exc}") from None
        return cls(**values)

    def to_environ(self) -> dict[str, str]:
        """The inverse of `from_environ` (every field written)."""
        out = {}
        for name, (var, kind) in ENVIRONMENT.items():
            value = getattr(self, name)
            out[var] = ("true" if value else "false") if kind == "bool" else str(value)
        return out


# Settings field -> (environment variable, kind), from `SETTINGS`. Terraform writes the same names.
ENVIRONMENT: dict[str, tuple[str, str]] = {s.name: (s.env_var, s.kind) for s in SETTINGS}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse(raw: str, kind: str) -> Any:
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    return raw


StopKind = Literal["stop", "terminate-only", "unknown"]


@dataclass(frozen=True)
class Group:
    """A group that keeps its size (an AWS Auto Scaling group, a GCP managed instance group)."""

    name: str
    min_size: int
    desired_capacity: int
    member_state: str = "InService"  # of this instance in the group; anything else: leaving, left alone
    kind: str = "group"  # what messages call it ("Auto Scaling group", "managed instance group")
    key: str = ""  # unique within one pass (the cloud adds the group's scope when names can repeat)

    @property
    def budget_key(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Instance:
    """What a cloud says about one running instance, in the cloud's neutral terms (filled by its adapter)."""

    instance_id: str
    launch_time: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    region: str = ""
    zone: str = ""  # where it runs inside the region ("" when the cloud did not say)
    instance_type: str = ""
    market: str = (
        "on-demand"  # how it is bought, as messages say it ("on-demand", "persistent spot", "Spot VM")
    )
    # "stop": may be stopped; "terminate-only": can only be terminated (an AWS one-time spot request);
    # "unknown": the cloud could not tell (left alone, reported).
    stop_kind: StopKind = "stop"
    group: Group | None = None
    reservation: str | None = None  # the capacity reservation it runs in, when the cloud reports one
    hourly_cost: float | None = None
    expected_gpus: int | None = None  # GPUs of the type (None: unknown); a missing series is missing data
    handle: Any = field(default=None, compare=False, repr=False)  # the adapter's own reference (opaque here)

    @property
    def key(self) -> str:
        """Unique within one pass (names repeat across GCP zones)."""
        return f"{self.zone}/{self.instance_id}"

    @property
    def reserved(self) -> bool:
        return bool(self.reservation) or self.tags.get(CAPACITY_TAG, "").lower() == "reserved"


@dataclass(frozen=True)
class Window:
    """The metric window [start, end), aligned to the period."""

    start: datetime
    end: datetime
    period_seconds: int

    @property
    def periods(self) -> int:
        return int((self.end - self.start).total_seconds()) // self.period_seconds


def metric_window(now: datetime, settings: Settings) -> Window:
    """The last `idle_minutes` ending at the most recent period boundary at or before `now`."""
    period = settings.period_seconds
    epoch = int(now.timestamp())
    end = datetime.fromtimestamp(epoch - epoch % period, tz=UTC)
    return Window(end - timedelta(minutes=settings.idle_minutes), end, period)


@dataclass(frozen=True)
class GpuSeries:
    """One GPU's datapoints (period maxima) as read from the metric store."""

    index: str
    timestamps: Sequence[datetime]
    values: Sequence[float]


@dataclass
class GpuReading:
    """One GPU's series reduced, point by point as the pages arrive, to what the verdict needs: the maximum,
    the datapoints inside the window and which of its periods have one (a bit per period). Nothing is kept
    per datapoint, so memory does not grow with the window or the fleet's datapoints."""

    index: str
    window: Window
    maximum: float | None = None
    datapoints: int = 0
    covered: int = 0  # bit p set: period p of the window has a datapoint

    def add(self, when: datetime, value: float) -> None:
        """One datapoint stamped with the start of its period; points outside the window are ignored."""
        offset = (when - self.window.start).total_seconds()
        if offset < 0 or when >= self.window.end:
            return
        self.datapoints += 1
        self.covered |= 1 << (int(offset) // self.window.period_seconds)
        if self.maximum is None or value > self.maximum:
            self.maximum = value

    def merge(self, other: GpuReading) -> None:
        """The same GPU under another dimension set (the agent's config changed): one reading."""
        self.datapoints += other.datapoints
        self.covered |= other.covered
        if other.maximum is not None and (self.maximum is None or other.maximum > self.maximum):
            self.maximum = other.maximum


@dataclass(frozen=True)
class GpuEvidence:
    index: str
    maximum: float | None
    datapoints: int
    coverage: float  # share of the window's periods with a datapoint

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "max": self.maximum,
            "datapoints": self.datapoints,
            "coverage": round(self.coverage, 3),
        }


def gpu_evidence(series: GpuSeries | GpuReading, window: Window) -> GpuEvidence:
    """Maximum and coverage of one series, counting only datapoints inside the window."""
    periods = max(window.periods, 1)
    if isinstance(series, GpuReading):
        return GpuEvidence(
            series.index, series.maximum, series.datapoints, series.covered.bit_count() / periods
        )
    reading = GpuReading(series.index, window)
    for ts, v in zip(series.timestamps, series.values, strict=True):
        reading.add(ts, v)
    return gpu_evidence(reading, window)


@dataclass(frozen=True)
class Decision:
    """The verdict on one instance, the chosen action and the evidence; `outcome` is set after acting."""

    instance_id: str
    verdict: Verdict
    action: Action
    reason: str
    region: str = ""
    instance_type: str = ""
    window: Window | None = None
    gpus: tuple[GpuEvidence, ...] = ()
    hourly_cost: float | None = None
    alert: bool = False  # something a human should look at (capped, idle reserved, data missing, failure)
    group: str | None = None  # the group's budget key (`Group.budget_key`)
    zone: str = ""
    gpu_count: int | None = None  # GPUs the instance type carries, when known
    outcome: str = ""  # "", "dry-run", "done", "failed"
    error: str = ""

    @property
    def location(self) -> str:
        """Where it runs, as precisely as the cloud said: the zone, else the region."""
        return self.zone or self.region

    @property
    def hourly_cost_saved(self) -> float | None:
        """What acting saves per hour: the instance's cost when stopped/terminated/scaled in."""
        if self.hourly_cost is None:
            return None
        return self.hourly_cost if self.action not in ("none", "warn") else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "region": self.region,
            "zone": self.zone,
            "instance_type": self.instance_type,
            "gpu_count": self.gpu_count,
            "verdict": self.verdict,
            "action": self.action,
            "reason": self.reason,
            "outcome": self.outcome,
            "error": self.error,
            "alert": self.alert,
            "evidence": {
                "window_start": self.window.start.isoformat() if self.window else None,
                "window_end": self.window.end.isoformat() if self.window else None,
                "period_seconds": self.window.period_seconds if self.window else None,
                "gpus": [g.to_json() for g in self.gpus],
            },
            "hourly_cost": self.hourly_cost,
            "hourly_cost_saved": self.hourly_cost_saved,
        }


def parse_time(text: str) -> datetime:
    """ISO-8601 (a trailing Z allowed); naive times are taken as UTC."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(text: str) -> timedelta:
    """`4h`, `90m`, `1h30m`, `2d` -> a positive timedelta."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration (e.g. 4h, 90m, 1h30m, 2d)")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    delta = timedelta(days=days, hours=hours, minutes=minutes)
    if delta <= timedelta(0):
        raise ValueError(f"{text!r}: the duration must be positive")
    return delta


def keep_until(now: datetime, *, for_: str | None = None, until: str | None = None) -> datetime:
    """When a keep-alive ends: `now + for_`, or `until` (ISO-8601, in the future)."""
    if (for_ is None) == (until is None):
        raise ValueError("give one of --for DURATION or --until TIME")
    if for_ is not None:
        return (now + parse_duration(for_)).replace(microsecond=0)
    assert until is not None
    moment = parse_time(until)
    if moment <= now:
        raise ValueError(f"--until {until!r} is not in the future")
    return moment


def keep_tag_value(moment: datetime) -> str:
    """The `pyctl:keep-until` value: UTC, seconds, `Z` (what `exclusion` reads back)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exclusion(instance: Instance, settings: Settings, now: datetime) -> str | None:
    """Why the watchdog must leave this instance alone, or None."""
    if instance.tags.get(OPT_IN_TAG, "").strip().lower() != "true":
        return f"{OPT_IN_TAG} tag absent or not 'true'"
    if instance.expected_gpus == 0:
        return f"{instance.instance_type or 'the instance type'} has no GPUs"
    keep = instance.tags.get(KEEP_UNTIL_TAG)
    if keep is not None:
        try:
            until = parse_time(keep)
        except ValueError:
            return f"{KEEP_UNTIL_TAG}={keep!r} is not an ISO-8601 time (kept to be safe)"
        if until > now:
            return f"keep-alive until {until.isoformat()}"
    if settings.protected_env and not settings.act_in_protected_env:
        return "protected env (act_in_protected_env not set)"
    if instance.group and instance.group.member_state != "InService":
        return f"{instance.group.kind} lifecycle state {instance.group.member_state}"
    return None


def uptime(instance: Instance, now: datetime) -> timedelta:
    return now - instance.launch_time


def needs_metrics(instance: Instance, settings: Settings, now: datetime) -> bool:
    """Whether the verdict depends on metrics (excluded and young instances are not read: cheaper)."""
    young = uptime(instance, now) < timedelta(minutes=settings.min_uptime_minutes)
    return not young and exclusion(instance, settings, now) is None


def data_verdict(
    instance: Instance,
    series: Sequence[GpuSeries | GpuReading] | None,
    window: Window,
    settings: Settings,
    now: datetime,
) -> tuple[Verdict, str, tuple[GpuEvidence, ...]]:
    """busy / idle / no-data from the GPU series; `series=None` means the read failed (never idle)."""
    if series is None:
        return "no-data", "metrics could not be read", ()
    evidence = tuple(sorted((gpu_evidence(s, window) for s in series), key=lambda e: _index_key(e.index)))
    busy = [e for e in evidence if e.maximum is not None and e.maximum >= settings.threshold_percent]
    if busy:
        top = max(busy, key=lambda e: e.maximum or 0.0)
        return "busy", f"GPU {top.index} max {top.maximum:g}% >= {settings.threshold_percent:g}%", evidence
    gap = _coverage_gap(instance, evidence, settings)
    if gap:
        if settings.missing_data == "idle":
            grace = timedelta(minutes=settings.missing_data_grace_minutes)
            if uptime(instance, now) >= grace:
                why = (
                    f"treated as idle (missing_data=idle, up over {settings.missing_data_grace_minutes} min)"
                )
                return "idle", f"{gap}; {why}", evidence
        return "no-data", gap, evidence
    peak = max((e.maximum or 0.0) for e in evidence)
    return (
        "idle",
        f"all {len(evidence)} GPUs below {settings.threshold_percent:g}% for {settings.idle_minutes} min (max {peak:g}%)",
        evidence,
    )


def _index_key(index: str) -> tuple[int, int, str]:
    return (0, int(index), "") if index.isdigit() else (1, 0, index)


def _coverage_gap(instance: Instance, evidence: Sequence[GpuEvidence], settings: Settings) -> str:
    """A description of missing or partial data, or "" when every GPU covers the window."""
    if not evidence:
        return "no GPU metrics in the window"
    if instance.expected_gpus is not None and len(evidence) < instance.expected_gpus:
        return f"metrics for {len(evidence)} of {instance.expected_gpus} GPUs"
    thin = [e for e in evidence if e.coverage < settings.min_coverage]
    if thin:
        worst = min(thin, key=lambda e: e.coverage)
        return f"GPU {worst.index} datapoints cover {worst.coverage:.0%} of the window (< {settings.min_coverage:.0%})"
    return ""


def choose_action(instance: Instance, settings: Settings, now: datetime) -> tuple[Action, str, bool]:
    """(action, reason, alert) for an idle instance, by how it runs."""
    cost = f" (${instance.hourly_cost:.2f}/h)" if instance.hourly_cost is not None else ""
    acted = instance.tags.get(ACTED_TAG)
    if acted:
        try:
            when = parse_time(acted)
        except ValueError:
            when = None
        if when is not None and now - when < timedelta(minutes=settings.idle_minutes):
            return "none", f"already acted at {when.isoformat()} in this window", False
    if instance.reserved:
        which = instance.reservation or "tagged reserved"
        return "none", f"idle reserved capacity ({which}): billed anyway, stopping saves nothing{cost}", True
    if instance.group is not None:
        group = instance.group
        if group.desired_capacity - 1 < group.min_size:
            return (
                "none",
                f"{group.kind} {group.name} at min size ({group.min_size}); not scaled in{cost}",
                True,
            )
        return "scale-in", f"scale in {group.kind} {group.name} (desired {group.desired_capacity})", False
    if instance.stop_kind == "stop":
        return "stop", f"idle {instance.market}", False
    if instance.stop_kind == "terminate-only":
        allowed = (
            settings.terminate_one_time_spot or instance.tags.get(SPOT_TERMINATE_TAG, "").lower() == "true"
        )
        if allowed:
            return "terminate", f"idle {instance.market} (cannot be stopped; pool allows terminate)", False
        return (
            "none",
            f"idle {instance.market}: cannot be stopped and the pool does not allow terminate{cost}",
            True,
        )
    return "none", f"idle {instance.market}{cost}", True


def decide(
    instance: Instance,
    series: Sequence[GpuSeries | GpuReading] | None,
    window: Window,
    settings: Settings,
    now: datetime,
) -> Decision:
    """The full decision for one instance before the per-run limits."""
    base = Decision(
        instance_id=instance.instance_id,
        verdict="excluded",
        action="none",
        reason="",
        region=instance.region,
        instance_type=instance.instance_type,
        window=window,
        hourly_cost=instance.hourly_cost,
        group=instance.group.budget_key if instance.group else None,
        zone=instance.zone,
        gpu_count=instance.expected_gpus,
    )
    excluded = exclusion(instance, settings, now)
    if excluded:
        return replace(base, reason=excluded)
    minimum = timedelta(minutes=settings.min_uptime_minutes)
    if uptime(instance, now) < minimum:
        up = int(uptime(instance, now).total_seconds() // 60)
        return replace(
            base, verdict="young", reason=f"up {up} min < minimum uptime {settings.min_uptime_minutes} min"
        )
    verdict, reason, evidence = data_verdict(instance, series, window, settings, now)
    if verdict != "idle":
        # Data missing on an instance past the grace period means the agent is not reporting: tell someone.
        grace = timedelta(minutes=settings.missing_data_grace_minutes)
        late = verdict == "no-data" and (series is None or uptime(instance, now) >= grace)
        return replace(base, verdict=verdict, reason=reason, gpus=evidence, alert=late)
    action, why, alert = choose_action(instance, settings, now)
    if action != "none" and settings.warn_minutes:
        action, why = warning_step(instance, action, why, settings, now)
    return replace(base, verdict="idle", action=action, reason=f"{reason}; {why}", gpus=evidence, alert=alert)


def warning_stale_after(settings: Settings) -> timedelta:
    """Age after which a warning no longer counts (the instance was busy since, or the runs stopped)."""
    return timedelta(minutes=settings.warn_minutes + max(60, 2 * settings.idle_minutes))


def warning_step(
    instance: Instance, action: Action, why: str, settings: Settings, now: datetime
) -> tuple[Action, str]:
    """With `warn_minutes`: the first idle verdict warns (tag + notification); a later one acts only when
    the warning is at least `warn_minutes` old (and not stale). Kept or busy meanwhile: nothing happens."""
    due = timedelta(minutes=settings.warn_minutes)
    raw = instance.tags.get(WARNED_TAG)
    try:
        warned = parse_time(raw) if raw else None
    except ValueError:
        warned = None  # unreadable: warn again rather than act without a warning
    if warned is not None and now - warned > warning_stale_after(settings):
        warned = None
    if warned is None:
        at = (now + due).strftime("%H:%M UTC")
        env = next((instance.tags[k] for k in ENV_TAG_KEYS if instance.tags.get(k)), "ENV")
        return "warn", (
            f"warning: will {action} at about {at} if still idle ({why}); keep it with "
            f"`pyctl watchdog keep {instance.instance_id} --env {env} --for 4h`"
        )
    if now - warned < due:
        at = (warned + due).strftime("%H:%M UTC")
        return "none", f"warned at {warned.strftime('%H:%M UTC')}: will {action} after {at} if still idle"
    return action, f"{why} (warned at {warned.isoformat()})"


def limit_actions(
    decisions: Iterable[Decision], settings: Settings, group_room: Mapping[str, int]
) -> list[Decision]:
    """Apply the per-group scale-in budget (never below min size) and the per-run action cap.

    Costlier instances act first; the rest are reported with `alert` set. `group_room` maps a group's budget key to
    how many instances it may lose (desired - min). The input order is kept in the output.
    """
    decisions = list(decisions)
    order = sorted(
        (i for i, d in enumerate(decisions) if d.action != "none"),
        key=lambda i: (-(decisions[i].hourly_cost or 0.0), decisions[i].instance_id),
    )
    room = dict(group_room)
    taken = 0
    for i in order:
        d = decisions[i]
        if d.action == "scale-in" and d.group is not None:
            if room.get(d.group, 0) <= 0:
                decisions[i] = replace(
                    d,
                    action="none",
                    alert=True,
                    reason=f"{d.reason}; group {d.group} would go below min size",
                )
                continue
            room[d.group] = room.get(d.group, 0) - 1
        if taken >= settings.max_actions_per_run:
            decisions[i] = replace(
                d,
                action="none",
                alert=True,
                reason=f"{d.reason}; max actions per run ({settings.max_actions_per_run}) reached, would {d.action}",
            )
            continue
        taken += 1
    return decisions


def queries_per_request(points_per_query: int) -> int:
    """How many metric queries fit one GetMetricData request (500 queries and 100,800 datapoints max)."""
    return max(1, min(MAX_QUERIES_PER_REQUEST, MAX_DATAPOINTS_PER_REQUEST // max(points_per_query, 1)))


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# The summary names at most this many instances per kind; the rest are counted (the log has them all).
SUMMARY_TOP = 20
SUMMARY_MAX_BYTES = 32_000  # far below SNS's 256 KB and a Slack message's practical size
_LINE_PART = 300  # a reason or error longer than this is cut in the summary (the log has it whole)


@dataclass(frozen=True)
class Summary:
    """Counts per verdict and outcome, and the lines worth sending to a human."""

    counts: Mapping[str, int]
    acted: tuple[Decision, ...]
    failed: tuple[Decision, ...]
    alerts: tuple[Decision, ...]
    dry_run: bool
    errors: tuple[str, ...] = ()  # failures not tied to one instance (a region that could not be read)

    @property
    def notify(self) -> bool:
        """Send a notification only when something was done or is wrong."""
        return bool(self.acted or self.failed or self.alerts or self.errors)

    @property
    def hourly_saved(self) -> float:
        return sum(d.hourly_cost_saved or 0.0 for d in self.acted if d.outcome == "done")

    def named(self, top: int = SUMMARY_TOP) -> dict[str, Any]:
        """The counts and, per kind, at most `top` instance ids in the summary's order (`<kind>_total`
        counts them all): the bounded part of a run's result, the same on both clouds."""
        out: dict[str, Any] = {"counts": dict(self.counts)}
        for kind, group in (("acted", self.acted), ("failed", self.failed), ("alerts", self.alerts)):
            out[kind] = [d.instance_id for d in costliest_first(group)[:top]]
            out[f"{kind}_total"] = len(group)
        return out

    def text(self, title: str = "pyctl GPU watchdog", *, top: int = SUMMARY_TOP, log: str = "") -> str:
        """The notification: the counts, then at most `top` lines per kind (failed first, costliest first),
        how many more there are and where the full record is (`log`: one JSON line per decision there).
        Bounded at any fleet size: at most `SUMMARY_MAX_BYTES` of UTF-8 (SNS takes 256 KB)."""
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items() if v)
        lines = [f"{title}{' (dry run)' if self.dry_run else ''}: {counts or 'no candidates'}"]
        tally = [
            f"{len(group)} {label}"
            for label, group in (("acted", self.acted), ("failed", self.failed), ("attention", self.alerts))
            if group
        ]
        if self.errors:
            tally.append(f"{len(self.errors)} errors")
        if tally:
            lines.append(", ".join(tally))
        hidden = 0
        for label, group in (("FAILED", self.failed), ("acted", self.acted), ("attention", self.alerts)):
            ranked = costliest_first(group)
            for d in ranked[:top]:
                shown = "WARNING" if d.action == "warn" and label == "acted" else label
                cost = f" ${d.hourly_cost:.2f}/h" if d.hourly_cost is not None else ""
                extra = f" error: {_cut(d.error)}" if d.error else ""
                lines.append(
                    f"- {shown}: {d.instance_id} {d.location} {d.instance_type}{cost} {d.verdict} "
                    f"-> {d.action} [{d.outcome or 'not acted'}]: {_cut(d.reason)}{extra}"
                )
            if len(ranked) > top:
                hidden += len(ranked) - top
                lines.append(f"- ... and {len(ranked) - top} more {label.lower()}")
        lines.extend(f"- error: {_cut(e)}" for e in self.errors[:top])
        if len(self.errors) > top:
            hidden += len(self.errors) - top
            lines.append(f"- ... and {len(self.errors) - top} more errors")
        if self.hourly_saved:
            lines.append(f"saved about ${self.hourly_saved:.2f} per hour")
        if hidden or log:
            lines.append(f"every decision, one JSON line each: {log or 'the run log'}")
        return _bounded("\n".join(lines), SUMMARY_MAX_BYTES)


def costliest_first(group: Sequence[Decision]) -> list[Decision]:
    """The order the summary names instances in: costliest first, then by id."""
    return sorted(group, key=lambda d: (-(d.hourly_cost or 0.0), d.instance_id))


def _cut(text: str, limit: int = _LINE_PART) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def _bounded(text: str, limit: int) -> str:
    """`text` cut at a line boundary to at most `limit` bytes of UTF-8, saying so."""
    data = text.encode()
    if len(data) <= limit:
        return text
    note = "\n- ... cut here (summary size limit); the log has every decision"
    kept = data[: limit - len(note.encode())].decode(errors="ignore")
    return kept.rsplit("\n", 1)[0] + note


def summarize(decisions: Sequence[Decision], dry_run: bool, errors: Sequence[str] = ()) -> Summary:
    counts: dict[str, int] = {v: sum(d.verdict == v for d in decisions) for v in VERDICTS}
    acted = tuple(d for d in decisions if d.action != "none" and d.outcome in ("done", "dry-run"))
    failed = tuple(d for d in decisions if d.outcome == "failed")
    alerts = tuple(d for d in decisions if d.alert and d.outcome != "failed")
    return Summary(counts, acted, failed, alerts, dry_run, tuple(errors))

"""Spot VM recovery on GCP: the pass that restarts preempted Spot VMs. (Checkpoints in Cloud Storage go
through `pyctl.clouds.gcp.storage.GcsStore` and `pyctl.core.checkpoint_store`.)

Recovery pass: a Spot VM whose termination action is STOP is left TERMINATED by a preemption; Compute
Engine does not start it again by itself. `recover_spot_vms` starts the standalone ones that were
preempted since they last started (a VM someone stopped on purpose is left alone); a start refused for
lack of capacity is retried on the next pass. Members of a managed instance group are the group's job:
it recreates or restarts them itself.

Env scope: with `env` (the deployed function always passes its WATCHDOG_ENV) only VMs labelled
`pyctl-env=<env>` are considered: the label is part of the server-side list filter and checked again on
every VM listed, so one env's pass never starts another env's VM in a shared project. IAM cannot add to
that: Compute IAM conditions see resource names, types and Resource Manager tags, not labels.

Fallback pass (`run_fallback`): a spot pool with `spot.fallback: on_demand` has an on-demand twin group
(gcp-gpu-pool). After `max_interruptions` preemptions of the spot group's VMs within `window_hours`, or a
VM creation the spot group could not make for lack of capacity, the pool shifts to the twin: the twin is
resized to the spot group's target size, and once the twin is stable (its VMs run) the spot group goes to 0;
after `cooldown_hours` it shifts back the same way (spot group up, then the twin to 0). A shift spans
passes, so capacity never drops to zero while the other group is creating VMs.

State: one JSON object per pool, `<key_prefix>fallback/<pool>.json` in the env's model-cache bucket (a
managed group has no labels, and its description is set at creation only). Every write carries a generation
precondition (`ifGenerationMatch`; 0 = must not exist): of two passes at once only one claims a shift, the
other is refused (412) and does nothing; a write whose answer was lost and was retried is refused too and
the next pass, reading the object, carries on. Resizes are to absolute sizes taken from the state, so a
re-run after a lost answer converges instead of adding capacity twice.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pyctl.clouds.gcp import compute

__all__ = ["FallbackConfig", "recover_spot_vms", "run_fallback"]

log = logging.getLogger(__name__)


# --- recovery pass -------------------------------------------------------------------------------------------

# Per verb: finding preempted Spot VMs (list them, read their zone's preemption operations), starting one.
FIND_PERMISSIONS = ("compute.instances.list", "compute.zoneOperations.list")
START_PERMISSIONS = ("compute.instances.start",)
RECOVERY_PERMISSIONS = FIND_PERMISSIONS + START_PERMISSIONS


# The fallback pass: read both groups (get; listManagedInstances is also compute.instanceGroupManagers.get),
# resize them (update; regional groups use the same permissions), and its state object in the env's bucket.
FALLBACK_READ_PERMISSIONS = ("compute.instanceGroupManagers.get", "compute.zoneOperations.list")
FALLBACK_ACT_PERMISSIONS = ("compute.instanceGroupManagers.update",)
STATE_PERMISSIONS = ("storage.objects.create", "storage.objects.delete", "storage.objects.get")


def iam_permissions() -> dict[str, tuple[str, ...]]:
    """The recovery pass's permissions as the watchdog module's custom roles grant them (read / act), and
    the fallback's on its state objects (`fallback_state`, a bucket-level grant on the state prefix)."""
    return {
        "read": FIND_PERMISSIONS + FALLBACK_READ_PERMISSIONS,
        "act": START_PERMISSIONS + FALLBACK_ACT_PERMISSIONS,
        "fallback_state": STATE_PERMISSIONS,
    }


PREEMPTED = "compute.instances.preempted"
# Start refused because the zone has no capacity for the shape right now: try again next pass.
CAPACITY_CODES = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_POOL_EXHAUSTED"}
)


@dataclass(frozen=True)
class Recovery:
    name: str
    zone: str
    action: str  # "start" | "none"
    reason: str
    outcome: str = ""  # "", "dry-run", "done", "no-capacity", "failed"

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "zone": self.zone,
            "action": self.action,
            "reason": self.reason,
            "outcome": self.outcome,
        }


def last_preemptions(clients: compute.ComputeClients, project: str, zone: str) -> dict[str, datetime]:
    """numeric instance id -> its newest preemption in the zone's operation history."""
    from google.cloud import compute_v1

    request = compute_v1.ListZoneOperationsRequest(
        project=project, zone=zone, filter=f'(operationType = "{PREEMPTED}")'
    )
    newest: dict[str, datetime] = {}
    for op in clients.zone_operations.list(request=request):
        when = compute.parse_timestamp(op.insert_time)
        key = str(op.target_id)
        newest[key] = max(newest.get(key, when), when)
    return newest


def spot_recovery_decision(raw: Any, preempted_at: datetime | None) -> Recovery:
    """Whether to start one TERMINATED pyctl Spot VM (pure, given its preemption time)."""
    name, zone = raw.name, compute.last_segment(raw.zone)
    if raw.scheduling.instance_termination_action != "STOP":
        return Recovery(name, zone, "none", "termination action is not STOP")
    if compute.group_url(raw):
        return Recovery(name, zone, "none", "member of a managed instance group: the group brings it back")
    started = compute.parse_timestamp(raw.last_start_timestamp or raw.creation_timestamp)
    if preempted_at is None or preempted_at < started:
        return Recovery(name, zone, "none", "stopped, not preempted, since its last start: left alone")
    return Recovery(name, zone, "start", f"preempted at {preempted_at.isoformat()}")


def recover_spot_vms(
    project: str,
    zones: Sequence[str] | None = None,
    *,
    clients: compute.ComputeClients | None = None,
    dry_run: bool = False,
    env: str = "",
) -> list[Recovery]:
    """Start preempted standalone pyctl Spot VMs (label pyctl-capacity=spot, and pyctl-env=`env` when
    given) where capacity is back."""
    clients = clients or compute.compute_clients()
    labels = {compute.CAPACITY_LABEL: "spot"}
    if env:
        labels[compute.ENV_LABEL] = env
    filter_ = compute.label_filter(labels, "TERMINATED")
    listed, missed = compute.list_instances(clients, project, zones, filter_)
    for problem in missed:
        log.warning("spot recovery: %s could not be listed", problem)
    stopped = [
        r
        for r in listed
        if r.status == "TERMINATED" and (not env or dict(r.labels).get(compute.ENV_LABEL) == env)
    ]
    history: dict[str, dict[str, datetime]] = {}
    decisions = []
    for raw in stopped:
        zone = compute.last_segment(raw.zone)
        if zone not in history:
            history[zone] = last_preemptions(clients, project, zone)
        decisions.append(spot_recovery_decision(raw, history[zone].get(str(raw.id))))
    out = start_vms(clients, project, decisions, dry_run)
    for decision in out:
        log.info("spot recovery: %s", decision.to_json())
    return out


def start_vms(
    clients: compute.ComputeClients,
    project: str,
    decisions: Sequence[Recovery],
    dry_run: bool,
    *,
    timeout: float = 180.0,
) -> list[Recovery]:
    """Start every VM decided so, then wait for the operations (`compute.call_then_wait`); a refusal for
    lack of capacity is an outcome of its own (`no-capacity`, retried next pass), not a failure."""
    out = [replace(d, outcome="dry-run") if d.action == "start" else d for d in decisions]
    if dry_run:
        return out
    todo = [(i, d) for i, d in enumerate(decisions) if d.action == "start"]
    calls = [
        partial(clients.instances.start_unary, project=project, zone=d.zone, instance=d.name) for _, d in todo
    ]
    for (i, d), error in zip(
        todo, compute.call_then_wait(clients, project, calls, timeout=timeout), strict=True
    ):
        if error is None:
            out[i] = replace(d, outcome="done")
        elif isinstance(error, compute.OperationError) and CAPACITY_CODES.intersection(error.codes):
            out[i] = replace(
                d, outcome="no-capacity", reason=f"{d.reason}; no capacity yet, retried next pass"
            )
        else:
            out[i] = replace(d, outcome="failed", reason=f"{d.reason}; {compute.describe_error(error)}")
    return out


# --- fallback pass: spot group <-> on-demand twin --------------------------------------------------------------

STATE_FORMAT = 1


@dataclass(frozen=True)
class FallbackGroup:
    """A spot pool's two groups, as the stack writes them (gcp-gpu-pool's `fallback` output)."""

    pool: str
    spot_group: str
    twin_group: str
    location: str  # region (regional groups) or zone
    regional: bool
    zones: tuple[str, ...] = ()

    @property
    def group_zones(self) -> tuple[str, ...]:
        return self.zones or (() if self.regional else (self.location,))


@dataclass(frozen=True)
class FallbackConfig:
    """WATCHDOG_FALLBACK: the groups, the rule (env.yaml spot_recovery) and where the state lives."""

    groups: tuple[FallbackGroup, ...]
    state_bucket: str
    state_prefix: str = ""
    max_interruptions: int = 3
    window_hours: float = 6
    cooldown_hours: float = 2

    @classmethod
    def from_json(cls, text: str) -> FallbackConfig:
        doc = json.loads(text)
        groups = tuple(
            FallbackGroup(
                pool=g["pool"],
                spot_group=g["spot_group"],
                twin_group=g["twin_group"],
                location=g["location"],
                regional=bool(g["regional"]),
                zones=tuple(g.get("zones") or ()),
            )
            for g in doc["groups"]
        )
        if not doc.get("state_bucket"):
            raise ValueError("WATCHDOG_FALLBACK: state_bucket must name the env's bucket")
        return cls(
            groups=groups,
            state_bucket=doc["state_bucket"],
            state_prefix=doc.get("state_prefix") or "",
            max_interruptions=int(doc.get("max_interruptions", 3)),
            window_hours=float(doc.get("window_hours", 6)),
            cooldown_hours=float(doc.get("cooldown_hours", 2)),
        )

    def state_key(self, pool: str) -> str:
        return f"{self.state_prefix}fallback/{pool}.json"


@dataclass(frozen=True)
class FallbackState:
    """One pool's fallback record. `mode` is the market the pool is shifting to or is in; `phase` is
    `shifting` until the other group has been emptied, then `settled`."""

    mode: str  # "on-demand" | "spot"
    phase: str  # "shifting" | "settled"
    size: int  # the size the receiving group is given
    since: datetime | None = None  # on-demand period
    until: datetime | None = None
    reason: str = ""

    def to_json(self, group: FallbackGroup) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "pool": group.pool,
            "spot_group": group.spot_group,
            "twin_group": group.twin_group,
            "mode": self.mode,
            "phase": self.phase,
            "size": self.size,
            "since": None if self.since is None else _iso(self.since),
            "until": None if self.until is None else _iso(self.until),
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FallbackState:
        if doc.get("format") != STATE_FORMAT or doc.get("mode") not in ("on-demand", "spot"):
            raise ValueError(f"not a fallback state object: {str(doc)[:120]}")
        return cls(
            mode=doc["mode"],
            phase=doc["phase"] if doc.get("phase") in ("shifting", "settled") else "shifting",
            size=int(doc["size"]),
            since=compute.parse_timestamp(doc["since"]) if doc.get("since") else None,
            until=compute.parse_timestamp(doc["until"]) if doc.get("until") else None,
            reason=str(doc.get("reason", "")),
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class GroupSize:
    target: int
    stable: bool  # every VM of the group is running, none being created (MIG status.isStable)


@dataclass(frozen=True)
class FallbackStep:
    """What one pass does to one pool (pure: `fallback_step`)."""

    write: FallbackState | None  # the state to write first (compare-and-set), None: none
    twin_size: int | None  # resize the twin to this, None: leave it
    spot_size: int | None
    settle: bool  # after the resizes, write the state as settled
    reason: str


def fallback_step(
    state: FallbackState | None,
    spot: GroupSize,
    twin: GroupSize,
    preemptions: Sequence[datetime],
    capacity_errors: Sequence[str],
    now: datetime,
    config: FallbackConfig,
) -> FallbackStep:
    """The next move for one pool, given its state, both groups and the spot group's recent trouble."""
    if state is not None and state.mode == "on-demand":
        if state.phase == "shifting":
            return _shift_step(state, twin, "twin")
        if state.until is not None and now >= state.until:
            back = replace(state, mode="spot", phase="shifting", size=twin.target, reason="cool-down over")
            step = _shift_step(back, spot, "spot")
            return replace(step, write=back, reason=f"{state.until.isoformat()} reached: back to spot")
        return FallbackStep(None, None, None, False, f"on-demand until {state.until}")
    if state is not None and state.phase == "shifting":  # returning to spot
        if capacity_errors:  # spot is still short: another on-demand period; the twin kept its VMs
            why = f"spot capacity on the way back: {', '.join(sorted(set(capacity_errors)))}"
            again = FallbackState(
                "on-demand", "shifting", twin.target, now, now + _hours(config.cooldown_hours), why
            )
            return replace(_shift_step(again, twin, "twin"), write=again, reason=why)
        return _shift_step(state, spot, "spot")
    # Spot: only preemptions after the last on-demand period count, so a shift back does not at once shift
    # again for the preemptions that caused the last one.
    start = now - timedelta(hours=config.window_hours)
    if state is not None and state.until is not None:
        start = max(start, state.until)
    counted = [p for p in preemptions if p >= start]
    if len(counted) >= config.max_interruptions:
        why = f"{len(counted)} preemptions within {config.window_hours:g}h (limit {config.max_interruptions})"
    elif capacity_errors:
        why = f"spot capacity: {', '.join(sorted(set(capacity_errors)))}"
    else:
        return FallbackStep(None, None, None, False, f"spot: {len(counted)} preemptions in the window")
    if spot.target == 0:
        return FallbackStep(None, None, None, False, f"{why}; spot group is empty: nothing to shift")
    until = now + _hours(config.cooldown_hours)
    shift = FallbackState("on-demand", "shifting", spot.target, now, until, why)
    return replace(_shift_step(shift, twin, "twin"), write=shift, reason=why)


def _hours(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _shift_step(state: FallbackState, receiver: GroupSize, side: str) -> FallbackStep:
    """Receiver first: size it to `state.size`; only once it is stable at that size, empty the other."""
    twin = side == "twin"
    if receiver.target != state.size:
        return FallbackStep(
            None, state.size if twin else None, None if twin else state.size, False, "resizing"
        )
    if not receiver.stable:
        return FallbackStep(None, None, None, False, f"waiting for the {side} group's VMs")
    return FallbackStep(None, None if twin else 0, 0 if twin else None, True, f"{side} group ready")


@dataclass(frozen=True)
class FallbackOutcome:
    pool: str
    mode: str  # the mode after this pass: "spot" | "on-demand"
    action: str  # "none" | "shift" | "resize" | "settle"
    reason: str
    outcome: str = ""  # "", "dry-run", "done", "conflict", "failed"
    since: str | None = None
    until: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class StateStore:
    """The fallback's objects in the env's bucket, read and written with generation preconditions."""

    bucket: Any  # google.cloud.storage.Bucket
    generations: dict[str, int] = field(default_factory=dict)

    def read(self, key: str) -> FallbackState | None:
        blob = self.bucket.get_blob(key)
        if blob is None:
            self.generations[key] = 0
            return None
        data = blob.download_as_bytes(if_generation_match=blob.generation)
        self.generations[key] = int(blob.generation)
        return FallbackState.from_json(json.loads(data))

    def write(self, key: str, doc: dict[str, Any]) -> None:
        """Compare-and-set against the generation last read or written; PreconditionFailed when the
        object changed (another pass, or our own write whose answer was lost)."""
        blob = self.bucket.blob(key)
        blob.upload_from_string(
            json.dumps(doc, sort_keys=True), content_type="application/json",
            if_generation_match=self.generations.get(key, 0),
        )  # fmt: skip
        self.generations[key] = int(blob.generation)


_RESIZE_TIMEOUT = 120.0


def _group_size(clients: compute.ComputeClients, project: str, group: FallbackGroup, name: str) -> GroupSize:
    if group.regional:
        mig = clients.region_instance_group_managers.get(
            project=project, region=group.location, instance_group_manager=name
        )
    else:
        mig = clients.instance_group_managers.get(
            project=project, zone=group.location, instance_group_manager=name
        )
    return GroupSize(int(mig.target_size), bool(mig.status.is_stable))


def _capacity_errors(clients: compute.ComputeClients, project: str, group: FallbackGroup) -> list[str]:
    """Codes of the spot group's failed VM creations that mean "no capacity" (the managed instances'
    lastAttempt errors)."""
    if group.regional:
        pager = clients.region_instance_group_managers.list_managed_instances(
            project=project, region=group.location, instance_group_manager=group.spot_group
        )
    else:
        pager = clients.instance_group_managers.list_managed_instances(
            project=project, zone=group.location, instance_group_manager=group.spot_group
        )
    codes = []
    for managed in pager:
        for error in managed.last_attempt.errors.errors:
            if error.code in CAPACITY_CODES:
                codes.append(error.code)
    return codes


def _zone_preemptions(clients: compute.ComputeClients, project: str, zone: str) -> list[tuple[str, datetime]]:
    """(target link, time) of every preemption in the zone's operation history."""
    from google.cloud import compute_v1

    request = compute_v1.ListZoneOperationsRequest(
        project=project, zone=zone, filter=f'(operationType = "{PREEMPTED}")'
    )
    return [
        (op.target_link, compute.parse_timestamp(op.insert_time))
        for op in clients.zone_operations.list(request=request)
    ]


def _preemptions(
    history: Callable[[str], list[tuple[str, datetime]]], group: FallbackGroup, zones: Sequence[str]
) -> list[datetime]:
    """Preemption times of the spot group's VMs (named `<group>-xxxx`) in the zones' operation history."""
    member = re.compile(rf"/instances/{re.escape(group.spot_group)}-[a-z0-9]{{4}}$")
    return [when for zone in zones for link, when in history(zone) if member.search(link)]


def _resize(
    clients: compute.ComputeClients, project: str, group: FallbackGroup, name: str, size: int
) -> None:
    if group.regional:
        op = clients.region_instance_group_managers.resize_unary(
            project=project, region=group.location, instance_group_manager=name, size=size
        )
    else:
        op = clients.instance_group_managers.resize_unary(
            project=project, zone=group.location, instance_group_manager=name, size=size
        )
    compute.wait_for_operation(clients, project, op, timeout=_RESIZE_TIMEOUT)


def run_fallback(
    project: str,
    config: FallbackConfig,
    *,
    clients: compute.ComputeClients | None = None,
    bucket: Any = None,
    dry_run: bool = False,
    env: str = "",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[FallbackOutcome]:
    """One fallback pass over every configured pool. A pool's failure is its outcome, never an exception
    that stops the others."""
    from google.api_core.exceptions import GoogleAPICallError, PreconditionFailed
    from requests.exceptions import RequestException  # a lost answer, as the REST transports raise it

    clients = clients or compute.compute_clients()
    if bucket is None:
        from pyctl.clouds.gcp import storage_client

        bucket = storage_client(project).bucket(config.state_bucket)
    store = StateStore(bucket)
    zones: dict[str, list[tuple[str, datetime]]] = {}

    def history(zone: str) -> list[tuple[str, datetime]]:  # read once per zone and pass, for every pool
        if zone not in zones:
            zones[zone] = _zone_preemptions(clients, project, zone)
        return zones[zone]

    out = []
    for group in config.groups:
        if env and not (
            group.spot_group.startswith(f"pyctl-{env}-") and group.twin_group.startswith(f"pyctl-{env}-")
        ):
            out.append(FallbackOutcome(group.pool, "spot", "none", f"not a group of env {env}", "failed"))
            continue
        try:
            out.append(_fallback_pool(clients, project, config, store, history, group, dry_run, now()))
        except PreconditionFailed:
            out.append(
                FallbackOutcome(
                    group.pool, "spot", "none", "state changed by another pass: next pass", "conflict"
                )
            )
        except (GoogleAPICallError, RequestException, compute.OperationError, ValueError) as exc:
            out.append(FallbackOutcome(group.pool, "spot", "none", compute.describe_error(exc), "failed"))
    return out


def _fallback_pool(
    clients: compute.ComputeClients,
    project: str,
    config: FallbackConfig,
    store: StateStore,
    history: Callable[[str], list[tuple[str, datetime]]],
    group: FallbackGroup,
    dry_run: bool,
    now: datetime,
) -> FallbackOutcome:
    key = config.state_key(group.pool)
    state = store.read(key)
    spot = _group_size(clients, project, group, group.spot_group)
    twin = _group_size(clients, project, group, group.twin_group)
    preemptions: list[datetime] = []
    capacity: list[str] = []
    if state is None or state.mode == "spot":
        if state is None or state.phase == "settled":
            preemptions = _preemptions(history, group, group.group_zones)
        capacity = _capacity_errors(clients, project, group) if spot.target > 0 else []
    step = fallback_step(state, spot, twin, preemptions, capacity, now, config)
    current = step.write or state
    mode = current.mode if current else "spot"
    since = until = None
    if current is not None and current.mode == "on-demand":
        since = None if current.since is None else _iso(current.since)
        until = None if current.until is None else _iso(current.until)
    if step.write is None and step.twin_size is None and step.spot_size is None and not step.settle:
        return FallbackOutcome(group.pool, mode, "none", step.reason, since=since, until=until)
    action = "shift" if step.write is not None else ("settle" if step.settle else "resize")
    if dry_run:
        return FallbackOutcome(group.pool, mode, action, step.reason, "dry-run", since, until)
    if step.write is not None:
        store.write(key, step.write.to_json(group))  # the claim: of two passes, one gets here
    # Receiver first (the step never sets both unless the receiver is ready).
    if step.twin_size is not None:
        _resize(clients, project, group, group.twin_group, step.twin_size)
    if step.spot_size is not None:
        _resize(clients, project, group, group.spot_group, step.spot_size)
    if step.settle and current is not None:
        store.write(key, replace(current, phase="settled").to_json(group))
    log.info("spot fallback: %s %s -> %s", group.pool, action, step.reason)
    return FallbackOutcome(group.pool, mode, action, step.reason, "done", since, until)


@dataclass(frozen=True)
class PoolFallbackStatus:
    """A GCP spot pool's fallback as `pyctl jobs status` shows it (the fields of AWS's GroupStatus)."""

    group: str
    market: str  # "spot" | "on-demand"
    on_demand_since: datetime | None
    on_demand_until: datetime | None
    reason: str


def fallback_statuses(bucket: Any, prefix: str = "") -> list[PoolFallbackStatus]:
    """Every pool the fallback has shifted at least once, from its state objects. On demand from the shift
    until the pass has moved it back (a shift to spot still in progress shows as on-demand)."""
    out = []
    for blob in bucket.list_blobs(prefix=f"{prefix}fallback/"):
        if not blob.name.endswith(".json"):
            continue
        try:
            doc = json.loads(blob.download_as_bytes())
            state = FallbackState.from_json(doc)
        except ValueError:
            log.warning("spot fallback: %s is not a state object", blob.name)
            continue
        on_demand = state.mode == "on-demand" or state.phase == "shifting"
        out.append(
            PoolFallbackStatus(
                group=str(doc.get("spot_group") or blob.name),
                market="on-demand" if on_demand else "spot",
                on_demand_since=state.since if on_demand else None,
                on_demand_until=state.until if on_demand else None,
                reason=state.reason if on_demand else "",
            )
        )
    return sorted(out, key=lambda s: s.group)

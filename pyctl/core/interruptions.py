"""Pure recovery decisions for the spot-recovery Lambda: what an EC2 event means for a job.

Events (EventBridge, source `aws.ec2`) arrive at least once and possibly twice, so every side effect
is keyed: one key per (event id, instance id) for the record, one per interrupted instance for the
replacement launch (a warning and the later state change of the same instance launch at most once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pyctl.core.checkpoint import parse_time

INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
STATE_CHANGE = "EC2 Instance State-change Notification"
DETAIL_TYPES = (INTERRUPTION_WARNING, REBALANCE_RECOMMENDATION, STATE_CHANGE)

# DescribeInstances StateReason code when EC2 reclaimed a spot instance (vs. a user or ASG terminating it).
SPOT_TERMINATION_REASON = "Server.SpotInstanceTermination"
# States after which an instance no longer trains.
_GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
# RunInstances errors that mean "no spot capacity here now"; they trigger the on-demand fallback.
CAPACITY_ERRORS = frozenset({"InsufficientInstanceCapacity"})


class UnsupportedEvent(ValueError):
    """An event this function does not handle (wrong source or detail-type, no instance id)."""


@dataclass(frozen=True)
class Ec2Event:
    """The fields of an EventBridge `aws.ec2` event the decisions read."""

    detail_type: str
    event_id: str
    time: datetime
    region: str
    instance_id: str
    instance_action: str = ""  # interruption warning: terminate | stop | hibernate
    state: str = ""  # state-change notification: pending | running | shutting-down | terminated | ...

    @property
    def idempotency_key(self) -> str:
        return event_key(self.event_id, self.instance_id)


def parse_event(event: Mapping[str, Any]) -> Ec2Event:
    """Parse an EventBridge event; raise UnsupportedEvent for anything but the three EC2 detail-types."""
    if event.get("source") != "aws.ec2" or event.get("detail-type") not in DETAIL_TYPES:
        raise UnsupportedEvent(f"unsupported event {event.get('source')!r} / {event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or not isinstance(detail.get("instance-id"), str):
        raise UnsupportedEvent("event detail has no instance-id")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("time"), str):
        raise UnsupportedEvent("event has no id or time")
    return Ec2Event(
        detail_type=str(event["detail-type"]),
        event_id=event["id"],
        time=parse_time(event["time"]),
        region=str(event.get("region", "")),
        instance_id=detail["instance-id"],
        instance_action=str(detail.get("instance-action", "")),
        state=str(detail.get("state", "")),
    )


def event_key(event_id: str, instance_id: str) -> str:
    """Idempotency key of one delivery's record: the same event delivered twice maps to one key."""
    return f"EVENT#{event_id}#{instance_id}"


def replacement_key(instance_id: str) -> str:
    """Idempotency key of the replacement launch for one interrupted instance."""
    return f"REPLACE#{instance_id}"


@dataclass(frozen=True)
class InstanceFacts:
    """What DescribeInstances says about the interrupted instance."""

    instance_id: str
    job: str | None  # tag pyctl:job
    instance_type: str
    availability_zone: str
    lifecycle: str  # "spot" or "on-demand" (EC2 omits InstanceLifecycle for on-demand)
    asg_name: str | None = None  # tag aws:autoscaling:groupName
    state_reason_code: str = ""


@dataclass(frozen=True)
class JobState:
    """The job's row in the recovery table."""

    done: bool = False
    interruptions: tuple[datetime, ...] = ()
    on_demand_until: datetime | None = None


class Action(Enum):
    IGNORE = "ignore"
    RECORD_REBALANCE = "record-rebalance"
    RECORD_INTERRUPTION = "record-interruption"  # new interruption: record it (and maybe replace)
    UPDATE_INTERRUPTION = "update-interruption"  # the instance is gone: refresh the checkpoint step only


@dataclass(frozen=True)
class Decision:
    action: Action
    replace: bool
    reason: str


def decide(
    event: Ec2Event, instance: InstanceFacts | None, job: JobState | None, *, standalone: bool
) -> Decision:
    """What to do about one event. `standalone`: the job is configured with a launch template to replace
    its instances from (ASG pools are replaced by the group's capacity rebalancing and only recorded).
    """
    if instance is None:
        return Decision(Action.IGNORE, False, "instance not found")
    if instance.job is None:
        return Decision(Action.IGNORE, False, "instance has no pyctl:job tag")
    if job is not None and job.done:
        return Decision(Action.IGNORE, False, f"job {instance.job} is marked done")
    replace = standalone and instance.asg_name is None
    why = "launch a replacement" if replace else _no_replacement_reason(instance, standalone)
    if event.detail_type == REBALANCE_RECOMMENDATION:
        return Decision(
            Action.RECORD_REBALANCE, False, "rebalance recommendation: the agent checkpoints early"
        )
    if event.detail_type == INTERRUPTION_WARNING:
        return Decision(Action.RECORD_INTERRUPTION, replace, f"interruption warning: {why}")
    if event.state not in _GONE_STATES:
        return Decision(Action.IGNORE, False, f"state {event.state or 'unknown'} needs nothing")
    if instance.lifecycle == "spot" and instance.state_reason_code == SPOT_TERMINATION_REASON:
        # A reclaimed spot instance whose warning was missed still gets its (single) replacement.
        return Decision(Action.RECORD_INTERRUPTION, replace, f"spot instance reclaimed: {why}")
    return Decision(
        Action.UPDATE_INTERRUPTION, False, f"instance {event.state}: not reclaimed by EC2, no launch"
    )


def _no_replacement_reason(instance: InstanceFacts, standalone: bool) -> str:
    if instance.asg_name is not None:
        return f"ASG {instance.asg_name} replaces it by capacity rebalancing; recorded only"
    if not standalone:
        return "no launch template configured for this job; recorded only"
    return "recorded only"


# --- market: spot, or on-demand for a while --------------------------------------------------------


class Market(Enum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


@dataclass(frozen=True)
class RecoveryPolicy:
    """Fall back to on-demand after `max_interruptions` within `window`, or on a capacity error;
    go back to spot once `cooldown` has passed.
    """

    max_interruptions: int = 3
    window: timedelta = timedelta(hours=6)
    cooldown: timedelta = timedelta(hours=2)

    def __post_init__(self) -> None:
        if self.max_interruptions < 1:
            raise ValueError("max_interruptions must be at least 1")
        if self.window <= timedelta(0) or self.cooldown < timedelta(0):
            raise ValueError("window must be positive and cooldown not negative")


@dataclass(frozen=True)
class MarketChoice:
    market: Market
    on_demand_until: datetime | None
    reason: str


def choose_market(
    job: JobState, policy: RecoveryPolicy, now: datetime, *, capacity_error: bool = False
) -> MarketChoice:
    """The market for the next replacement. Interruptions from before the last on-demand period ended
    do not count again, so the job really goes back to spot after the cool-down.
    """
    if capacity_error:
        until = now + policy.cooldown
        return MarketChoice(Market.ON_DEMAND, until, "no spot capacity (InsufficientInstanceCapacity)")
    if job.on_demand_until is not None and now < job.on_demand_until:
        return MarketChoice(Market.ON_DEMAND, job.on_demand_until, "on-demand cool-down still running")
    since = now - policy.window
    if job.on_demand_until is not None:
        since = max(since, job.on_demand_until)
    recent = [t for t in job.interruptions if since <= t <= now]
    if len(recent) >= policy.max_interruptions:
        until = now + policy.cooldown
        return MarketChoice(
            Market.ON_DEMAND,
            until,
            f"{len(recent)} interruptions within {_hours(policy.window)} (limit {policy.max_interruptions})",
        )
    return MarketChoice(Market.SPOT, None, f"{len(recent)} interruptions within {_hours(policy.window)}")


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"


# --- placement: another AZ or instance type than the interrupted one ---------------------------------


@dataclass(frozen=True)
class Placement:
    instance_type: str
    subnet_id: str
    availability_zone: str


@dataclass(frozen=True)
class JobTemplate:
    """A standalone job's replacement recipe: its launch template, allowed types and subnets, and the
    security groups of the template's network interface (a request that names the subnet must name
    them on the interface too)."""

    launch_template_id: str
    instance_types: tuple[str, ...]
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)
    security_group_ids: tuple[str, ...] = field(default_factory=tuple)


def placement_order(
    interrupted: InstanceFacts, instance_types: Sequence[str], subnet_zones: Mapping[str, str]
) -> list[Placement]:
    """Every (type, subnet) candidate, best first: another AZ with the same type, then another type in
    another AZ, then another type in the same AZ; the interrupted pair itself comes last.
    """
    types = list(dict.fromkeys(instance_types or [interrupted.instance_type]))

    def rank(p: Placement) -> tuple[int, int, str]:
        same_type = p.instance_type == interrupted.instance_type
        same_az = p.availability_zone == interrupted.availability_zone
        order = {(True, False): 0, (False, False): 1, (False, True): 2, (True, True): 3}[(same_type, same_az)]
        return order, types.index(p.instance_type), p.subnet_id

    candidates = [Placement(t, subnet, az) for t in types for subnet, az in subnet_zones.items()]
    return sorted(candidates, key=rank)

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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from pyctl.clouds.gcp import compute

__all__ = ["recover_spot_vms"]

log = logging.getLogger(__name__)


# --- recovery pass -------------------------------------------------------------------------------------------

# Per verb: finding preempted Spot VMs (list them, read their zone's preemption operations), starting one.
FIND_PERMISSIONS = ("compute.instances.list", "compute.zoneOperations.list")
START_PERMISSIONS = ("compute.instances.start",)
RECOVERY_PERMISSIONS = FIND_PERMISSIONS + START_PERMISSIONS


def iam_permissions() -> dict[str, tuple[str, ...]]:
    """The recovery pass's permissions as the watchdog module's custom roles grant them (read / act)."""
    return {"read": FIND_PERMISSIONS, "act": START_PERMISSIONS}


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

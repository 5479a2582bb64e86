"""Compute Engine I/O for the idle-GPU watchdog and the Spot recovery pass (google-cloud-compute, REST).

Verdicts and action choice are pure (`pyctl.core.idle`); this module lists candidates, turns them into
`idle.Instance` facts, and acts. Each action declares the IAM permissions it needs next to its code;
`iam_permissions()` collects them and a test compares them with the custom role in
`infra/modules/gcp-gpu-watchdog`.

Endpoint: `PYCTL_GCP_COMPUTE_ENDPOINT` (e.g. `http://127.0.0.1:8089`) points every client at an emulator
or a staging proxy; only then are anonymous credentials used. Otherwise Application Default Credentials.

Managed instance groups, the rule: an idle member is removed with `deleteInstances` (which names the
instance and lowers the target size by one; a plain `resize` would let the group pick which VM to delete,
possibly a busy one). The group's minimum is the autoscaler's `minNumReplicas` when an autoscaler targets
the group, else the pool's `pyctl-min-size` label, else the current target size (never scaled in). The
group may lose `targetSize - minimum` members per run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pyctl.core import idle
from pyctl.core.idle import Decision, Instance

ENDPOINT_VARIABLE = "PYCTL_GCP_COMPUTE_ENDPOINT"

# Label keys (GCP labels: lowercase [a-z0-9_-], values at most 63 characters, no ':' or '+').
OPT_IN_LABEL = "auto-shutdown"
KEEP_UNTIL_LABEL = "pyctl-keep-until"  # 20261122t1030z (UTC) or Unix seconds
CAPACITY_LABEL = "pyctl-capacity"  # "reserved" | "on-demand" | "spot" (written by gcp-gpu-pool)
MIN_SIZE_LABEL = "pyctl-min-size"  # the pool's minimum group size (written by gcp-gpu-pool)
POOL_LABEL = "pyctl-pool"

_KEEP_UNTIL_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})t(\d{2})(\d{2})z$")
_SCOPED_GROUP = re.compile(r"(zones|regions)/([^/]+)/instanceGroupManagers/([^/]+)$")


def keep_until_from_label(value: str) -> str:
    """The core's ISO-8601 keep-until time from a label value; an unreadable value is passed on unchanged
    (the core then keeps the instance, to be safe)."""
    text = value.strip().lower()
    match = _KEEP_UNTIL_COMPACT.match(text)
    if match:
        y, mo, d, h, mi = match.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:00+00:00"
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC).isoformat()
    return value


def keep_until_label(moment: datetime) -> str:
    """The label value that keeps an instance alive until `moment` (minute precision, UTC)."""
    return moment.astimezone(UTC).strftime("%Y%m%dt%H%Mz")


def core_tags(labels: Mapping[str, str]) -> dict[str, str]:
    """GCP labels translated into the tag names `pyctl.core.idle` reads (other labels kept as they are)."""
    tags = dict(labels)
    if OPT_IN_LABEL in labels:
        tags[idle.OPT_IN_TAG] = labels[OPT_IN_LABEL]
    if KEEP_UNTIL_LABEL in labels:
        tags[idle.KEEP_UNTIL_TAG] = keep_until_from_label(labels[KEEP_UNTIL_LABEL])
    if labels.get(CAPACITY_LABEL) == "reserved":
        tags[idle.CAPACITY_TAG] = "reserved"
    return tags


def last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 as Compute Engine writes it (`2026-11-22T01:02:03.456-08:00`)."""
    return idle.parse_time(text)


# --- clients -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComputeClients:
    """Every Compute client the watchdog and the recovery pass use, built in `compute_clients()`."""

    instances: Any
    zone_operations: Any
    region_operations: Any
    instance_group_managers: Any
    region_instance_group_managers: Any
    autoscalers: Any
    region_autoscalers: Any


def compute_clients(endpoint: str | None = None) -> ComputeClients:
    """The one factory. Operation polling uses separately built operations clients on the same endpoint."""
    from google.cloud import compute_v1

    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE) or None
    kwargs: dict[str, Any] = {}
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        # An override means an emulator or a test fake: never send real credentials to it.
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        kwargs = {"client_options": {"api_endpoint": endpoint}, "credentials": anonymous}
    return ComputeClients(
        instances=compute_v1.InstancesClient(**kwargs),
        zone_operations=compute_v1.ZoneOperationsClient(**kwargs),
        region_operations=compute_v1.RegionOperationsClient(**kwargs),
        instance_group_managers=compute_v1.InstanceGroupManagersClient(**kwargs),
        region_instance_group_managers=compute_v1.RegionInstanceGroupManagersClient(**kwargs),
        autoscalers=compute_v1.AutoscalersClient(**kwargs),
        region_autoscalers=compute_v1.RegionAutoscalersClient(**kwargs),
    )


class OperationError(RuntimeError):
    """A Compute operation finished with errors (or did not finish in time)."""

    def __init__(self, message: str, codes: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.codes = tuple(codes)


OPERATION_PERMISSIONS = ("compute.zoneOperations.get", "compute.regionOperations.get")


def wait_for_operation(
    clients: ComputeClients, project: str, operation: Any, *, timeout: float = 120.0
) -> Any:
    """Poll a zonal or regional operation until DONE (each `wait` call blocks up to about 2 minutes on
    GCP); raise OperationError when it fails or does not finish within `timeout` seconds."""
    import time

    from google.cloud import compute_v1

    done = compute_v1.Operation.Status.DONE
    deadline = time.monotonic() + timeout
    while operation.status != done:
        left = deadline - time.monotonic()
        if left <= 0:
            raise OperationError(f"operation {operation.name} not done after {timeout:g} s")
        if operation.zone:
            operation = clients.zone_operations.wait(
                project=project, zone=last_segment(operation.zone), operation=operation.name, timeout=left
            )
        else:
            operation = clients.region_operations.wait(
                project=project, region=last_segment(operation.region), operation=operation.name, timeout=left
            )
    errors = list(operation.error.errors) if operation.error else []
    if errors:
        codes = [e.code for e in errors]
        text = "; ".join(f"{e.code}: {e.message}" for e in errors)
        raise OperationError(f"operation {operation.name} failed: {text}", codes)
    return operation


# --- keep-alive (from a workstation: `pyctl watchdog keep`) ----------------------------------------------

ENV_LABEL = "pyctl-env"  # written on every pool VM by gcp-gpu-pool


def keep_vm(
    clients: ComputeClients, project: str, zones: Sequence[str], name: str, env: str, until: datetime | None
) -> str:
    """Write (or with `until=None` remove) the keep-alive label on VM `name` of `env`, found in one of
    `zones`; refuse a VM of another env. Returns the zone."""
    from google.api_core.exceptions import NotFound
    from google.cloud import compute_v1

    from pyctl.errors import PyctlError

    for zone in zones:
        try:
            vm = clients.instances.get(project=project, zone=zone, instance=name)
        except NotFound:
            continue
        labels = dict(vm.labels)
        owner = labels.get(ENV_LABEL)
        if owner != env:
            which = f"belongs to env {owner!r}" if owner else f"carries no {ENV_LABEL} label"
            raise PyctlError(f"VM {name} ({zone}) {which}, not env {env!r}: not changed")
        if until is None:
            labels.pop(KEEP_UNTIL_LABEL, None)
        else:
            labels[KEEP_UNTIL_LABEL] = keep_until_label(until)
        body = compute_v1.InstancesSetLabelsRequest(labels=labels, label_fingerprint=vm.label_fingerprint)
        operation = clients.instances.set_labels_unary(
            project=project, zone=zone, instance=name, instances_set_labels_request_resource=body
        )
        wait_for_operation(clients, project, operation, timeout=60)
        return zone
    raise PyctlError(f"VM {name} not found in project {project} zones {', '.join(zones)}")


# --- reading -------------------------------------------------------------------------------------------------

LIST_PERMISSIONS = ("compute.instances.list",)
GROUP_PERMISSIONS = ("compute.instanceGroupManagers.get", "compute.autoscalers.get")


def label_filter(labels: Mapping[str, str], status: str | None = None) -> str:
    """A Compute list filter: every label equal to its value (and the status, when given)."""
    terms = [f'(labels.{k} = "{v}")' for k, v in sorted(labels.items())]
    if status:
        terms.append(f'(status = "{status}")')
    return " AND ".join(terms)


def list_instances(
    clients: ComputeClients, project: str, zones: Sequence[str] | None, filter_: str
) -> tuple[list[Any], list[str]]:
    """Instances matching `filter_` (one aggregated list for the project, or a list per given zone), and
    the zones that could not be read: their VMs are missing from this pass, and someone should know."""
    from google.api_core.exceptions import GoogleAPICallError
    from google.cloud import compute_v1

    found: list[Any] = []
    missed: list[str] = []
    if zones:
        for zone in zones:
            request = compute_v1.ListInstancesRequest(project=project, zone=zone, filter=filter_)
            try:
                found.extend(clients.instances.list(request=request))
            except GoogleAPICallError as exc:
                missed.append(f"zones/{zone}: {exc.code}: {exc.message}")
        return found, missed
    request = compute_v1.AggregatedListInstancesRequest(project=project, filter=filter_)
    for scope, scoped in clients.instances.aggregated_list(request=request):
        found.extend(scoped.instances)
        if scoped.warning.code == "UNREACHABLE":
            missed.append(f"{scope}: {scoped.warning.message}")
    return found, missed


def gpu_count(raw: Any) -> int:
    return sum(int(a.accelerator_count) for a in raw.guest_accelerators)


def group_url(raw: Any) -> str | None:
    """The managed instance group a VM belongs to (its `created-by` metadata), or None."""
    for item in raw.metadata.items:
        if item.key == "created-by" and _SCOPED_GROUP.search(item.value):
            return str(item.value)
    return None


@dataclass(frozen=True)
class GroupRef:
    """A managed instance group: zonal (`scope_kind` "zones") or regional ("regions")."""

    scope_kind: str
    scope: str
    name: str

    @classmethod
    def from_url(cls, url: str) -> GroupRef:
        match = _SCOPED_GROUP.search(url)
        if match is None:
            raise ValueError(f"not an instance group manager URL: {url}")
        return cls(*match.groups())

    @property
    def key(self) -> str:
        return f"{self.scope}/{self.name}"


def read_group(
    clients: ComputeClients, project: str, ref: GroupRef, min_size_label: str | None
) -> idle.Group:
    """The group's target size and its minimum (see the module docstring for the rule)."""
    if ref.scope_kind == "zones":
        mig = clients.instance_group_managers.get(
            project=project, zone=ref.scope, instance_group_manager=ref.name
        )
    else:
        mig = clients.region_instance_group_managers.get(
            project=project, region=ref.scope, instance_group_manager=ref.name
        )
    target = int(mig.target_size)
    minimum = target
    if mig.status.autoscaler:
        name = last_segment(mig.status.autoscaler)
        if ref.scope_kind == "zones":
            scaler = clients.autoscalers.get(project=project, zone=ref.scope, autoscaler=name)
        else:
            scaler = clients.region_autoscalers.get(project=project, region=ref.scope, autoscaler=name)
        minimum = int(scaler.autoscaling_policy.min_num_replicas)
    elif min_size_label is not None and min_size_label.strip().isdigit():
        minimum = int(min_size_label)
    return idle.Group(
        name=ref.key, min_size=minimum, desired_capacity=target, kind="managed instance group", key=ref.key
    )


@dataclass(frozen=True)
class GceRef:
    """What acting on a VM needs (the `handle` of its `Instance`)."""

    numeric_id: str
    zone: str
    name: str
    self_link: str
    group: GroupRef | None = None


def gce_ref(instance: Instance) -> GceRef:
    ref = instance.handle
    if not isinstance(ref, GceRef):
        raise TypeError(f"{instance.instance_id} was not listed by pyctl.clouds.gcp.compute")
    return ref


def to_instance(
    raw: Any,
    *,
    groups: Mapping[str, idle.Group],
    prices: Mapping[str, float],
) -> Instance:
    labels = dict(raw.labels)
    zone = last_segment(raw.zone)
    machine_type = last_segment(raw.machine_type)
    url = group_url(raw)
    ref = GroupRef.from_url(url) if url else None
    started = raw.last_start_timestamp or raw.creation_timestamp
    scheduling = raw.scheduling
    spot = scheduling.provisioning_model == "SPOT" or bool(scheduling.preemptible)
    affinity = raw.reservation_affinity
    reservation = None
    if affinity.consume_reservation_type == "SPECIFIC_RESERVATION":
        reservation = ",".join(affinity.values) or "specific reservation"
    gpus = gpu_count(raw)
    return Instance(
        instance_id=raw.name,
        launch_time=parse_timestamp(started),
        tags=core_tags(labels),
        region=zone.rsplit("-", 1)[0],
        zone=zone,
        instance_type=machine_type,
        # A Spot VM can be stopped through the API whatever its termination action (its disks are kept).
        market="Spot VM" if spot else "on-demand",
        stop_kind="stop",
        group=groups.get(ref.key) if ref else None,
        reservation=reservation,
        hourly_cost=prices.get(f"{machine_type}:spot" if spot else machine_type),
        expected_gpus=gpus or None,
        handle=GceRef(str(raw.id), zone, raw.name, raw.self_link, ref),
    )


def describe_instances(
    clients: ComputeClients,
    project: str,
    zones: Sequence[str] | None,
    prices: Mapping[str, float],
    *,
    opt_in_only: bool = True,
    env: str = "",
) -> tuple[list[Instance], dict[str, int], list[str]]:
    """RUNNING GPU VMs (labelled auto-shutdown=true when `opt_in_only`; labelled pyctl-env=`env` when
    given), each group's scale-in room, and what could not be read. A VM whose group could not be read is
    left out: it must not be handled as a standalone VM.

    The env is part of the server-side list filter (`labels.pyctl-env = "dev"`; instances.list `filter`:
    "labels.env = prod", https://cloud.google.com/compute/docs/reference/rest/v1/instances/list) and
    checked again on what comes back."""
    from google.api_core.exceptions import GoogleAPICallError

    wanted = {OPT_IN_LABEL: "true"} if opt_in_only else {}
    if env:
        wanted[ENV_LABEL] = env
    listed, problems = list_instances(clients, project, zones, label_filter(wanted, "RUNNING"))
    raw = [r for r in listed if gpu_count(r) and r.status == "RUNNING"]  # the API filtered; checked again
    if env:
        raw = [r for r in raw if dict(r.labels).get(ENV_LABEL) == env]
    groups: dict[str, idle.Group | None] = {}
    for r in raw:
        url = group_url(r)
        ref = GroupRef.from_url(url) if url else None
        if ref is None or ref.key in groups:
            continue
        try:
            groups[ref.key] = read_group(clients, project, ref, dict(r.labels).get(MIN_SIZE_LABEL))
        except GoogleAPICallError as exc:
            groups[ref.key] = None
            problems.append(f"instance group {ref.key}: {exc.code}: {exc.message}; its VMs were skipped")
    known = {key: g for key, g in groups.items() if g is not None}
    instances = [to_instance(r, groups=known, prices=prices) for r in raw]
    instances = [vm for vm in instances if gce_ref(vm).group is None or vm.group is not None]
    room = {key: g.desired_capacity - g.min_size for key, g in known.items()}
    return instances, room, problems


# --- acting --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceAction:
    """One verb the watchdog performs on a VM, with the IAM permissions it needs."""

    name: str
    permissions: tuple[str, ...]
    call: Callable[[ComputeClients, str, GceRef], Any]


def _stop(clients: ComputeClients, project: str, vm: GceRef) -> Any:
    return clients.instances.stop_unary(project=project, zone=vm.zone, instance=vm.name)


def _scale_in(clients: ComputeClients, project: str, vm: GceRef) -> Any:
    from google.cloud import compute_v1

    assert vm.group is not None
    body = compute_v1.InstanceGroupManagersDeleteInstancesRequest(instances=[vm.self_link])
    if vm.group.scope_kind == "zones":
        return clients.instance_group_managers.delete_instances_unary(
            project=project,
            zone=vm.group.scope,
            instance_group_manager=vm.group.name,
            instance_group_managers_delete_instances_request_resource=body,
        )
    region_body = compute_v1.RegionInstanceGroupManagersDeleteInstancesRequest(instances=[vm.self_link])
    return clients.region_instance_group_managers.delete_instances_unary(
        project=project,
        region=vm.group.scope,
        instance_group_manager=vm.group.name,
        region_instance_group_managers_delete_instances_request_resource=region_body,
    )


ACTIONS: dict[str, InstanceAction] = {
    "stop": InstanceAction("stop", ("compute.instances.stop",), _stop),
    # deleteInstances needs update on the group and delete on the member VM.
    "scale-in": InstanceAction(
        "scale-in", ("compute.instanceGroupManagers.update", "compute.instances.delete"), _scale_in
    ),
}


def call_then_wait(
    clients: ComputeClients, project: str, calls: Sequence[Callable[[], Any]], *, timeout: float
) -> list[Exception | None]:
    """Make every call (each returns a zonal or regional operation), then wait for all the operations
    under one deadline: a GPU VM takes about a minute to stop or start, and waiting one by one would not
    fit the function's timeout. Returns, per call, None when its operation is done, else its error (an
    API error, or OperationError for a failed or unfinished operation)."""
    import time

    from google.api_core.exceptions import GoogleAPICallError

    started: list[Any] = []
    for call in calls:
        try:
            started.append(call())
        except GoogleAPICallError as exc:
            started.append(exc)
    deadline = time.monotonic() + timeout
    results: list[Exception | None] = []
    for operation in started:
        if isinstance(operation, Exception):
            results.append(operation)
            continue
        try:
            wait_for_operation(clients, project, operation, timeout=max(deadline - time.monotonic(), 1.0))
        except (GoogleAPICallError, OperationError) as exc:
            results.append(exc)
        else:
            results.append(None)
    return results


def describe_error(exc: Exception) -> str:
    code, message = getattr(exc, "code", None), getattr(exc, "message", None)
    return f"{code}: {message}" if code is not None and message is not None else str(exc)


def execute(
    clients: ComputeClients,
    project: str,
    planned: Sequence[tuple[Instance, Decision]],
    dry_run: bool,
    *,
    timeout: float = 240.0,
) -> list[Decision]:
    """Carry out the decisions (`call_then_wait`); an error is recorded on its decision, never raised."""
    out = [d if d.action == "none" else replace(d, outcome="dry-run") for _, d in planned]
    if dry_run:
        return out
    todo = []
    for i, (vm, d) in enumerate(planned):
        action = ACTIONS.get(d.action)
        if d.action == "none":
            continue
        if action is None:  # "terminate" is never chosen on GCP (there are no one-time spot requests)
            out[i] = _failed(d, f"action {d.action} is not supported on GCP")
            continue
        todo.append((i, d, partial(action.call, clients, project, gce_ref(vm))))
    errors = call_then_wait(clients, project, [call for _, _, call in todo], timeout=timeout)
    for (i, d, _), error in zip(todo, errors, strict=True):
        out[i] = replace(d, outcome="done") if error is None else _failed(d, describe_error(error))
    return out


def _failed(d: Decision, error: str) -> Decision:
    return replace(d, outcome="failed", alert=True, error=error)


def iam_permissions() -> dict[str, tuple[str, ...]]:
    """Every Compute permission the watchdog calls, as the module's custom roles grant them: read anywhere
    (listing, groups, operations), act per verb (`ACTIONS`) on named resources only."""
    acting = tuple(p for a in ACTIONS.values() for p in a.permissions)
    return {"read": LIST_PERMISSIONS + GROUP_PERMISSIONS + OPERATION_PERMISSIONS, "act": acting}

"""Spot VM recovery on GCP: checkpoints in Cloud Storage, and the pass that restarts preempted Spot VMs.

Checkpoints: the same manifest-last protocol as on S3 (`pyctl.core.checkpoint`): files uploaded in
parallel, MANIFEST.json last; a step without a valid manifest whose files are all stored does not exist;
downloads are verified against the manifest. The functions have the same names and arguments as
`pyctl.clouds.aws.checkpoints`, with a `google.cloud.storage.Client` in place of the S3 client, so the
node agent switches stores by cloud and nothing else.

Recovery pass: a Spot VM whose termination action is STOP is left TERMINATED by a preemption; Compute
Engine does not start it again by itself. `recover_spot_vms` starts the standalone ones that were
preempted since they last started (a VM someone stopped on purpose is left alone); a start refused for
lack of capacity is retried on the next pass. Members of a managed instance group are the group's job:
it recreates or restarts them itself.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from pyctl.clouds.gcp import compute
from pyctl.core.checkpoint import (
    COMPLETE_MARKER,
    MANIFEST_NAME,
    CheckpointManifest,
    build_checkpoint_manifest,
    candidate_steps,
    group_listing,
    job_prefix,
    manifest_problem,
    retention_plan,
    step_dir_name,
    step_prefix,
)
from pyctl.core.manifest import FileState, ManifestError, verify_file
from pyctl.errors import PyctlError

log = logging.getLogger(__name__)

FILE_WORKERS = 8


class ChecksumError(PyctlError):
    """A downloaded checkpoint file does not match its manifest."""


def gcs_client(project: str | None = None) -> Any:
    from pyctl.clouds.gcp import storage_client

    return storage_client(project, max_pool_connections=FILE_WORKERS + 2)


def bucket_name(bucket: str) -> str:
    """`gs://name` or `name` -> `name`."""
    return bucket.removeprefix("gs://").strip("/")


def _parallel(fn: Any, items: Sequence[Any]) -> None:
    with ThreadPoolExecutor(max_workers=FILE_WORKERS) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def upload_checkpoint(
    gcs: Any,
    bucket: str,
    prefix: str,
    job: str,
    step: int,
    step_dir: Path,
    *,
    now: datetime,
    config: Any = None,
) -> CheckpointManifest:
    """Upload every file of a local `step-<N>` directory in parallel, then MANIFEST.json last."""
    manifest = build_checkpoint_manifest(step_dir, job=job, step=step, now=now)
    head = step_prefix(prefix, job, step)
    store = gcs.bucket(bucket_name(bucket))

    def put(entry: Any) -> None:
        store.blob(head + entry.path).upload_from_filename(str(entry.local_path(step_dir)))

    _parallel(put, manifest.files.files)
    store.blob(head + MANIFEST_NAME).upload_from_string(
        manifest.to_json().encode(), content_type="application/json"
    )
    log.info(
        "uploaded checkpoint gs://%s/%s (%d files)", bucket_name(bucket), head, len(manifest.files.files)
    )
    return manifest


def list_objects(gcs: Any, bucket: str, key_prefix: str) -> list[tuple[str, int]]:
    return [(blob.name, int(blob.size)) for blob in gcs.list_blobs(bucket_name(bucket), prefix=key_prefix)]


def complete_checkpoints(gcs: Any, bucket: str, prefix: str, job: str) -> Iterator[CheckpointManifest]:
    """The job's complete checkpoints, newest first (see `pyctl.core.checkpoint` for "complete")."""
    steps = group_listing(prefix, job, list_objects(gcs, bucket, job_prefix(prefix, job)))
    store = gcs.bucket(bucket_name(bucket))
    for step in candidate_steps(steps):
        key = step_prefix(prefix, job, step) + MANIFEST_NAME
        try:
            manifest = CheckpointManifest.from_json(store.blob(key).download_as_bytes(), job=job, step=step)
        except ManifestError as exc:
            log.warning("skipping gs://%s/%s: %s", bucket_name(bucket), key, exc)
            continue
        problem = manifest_problem(steps[step], manifest)
        if problem:
            log.warning("skipping checkpoint step %d: %s", step, problem)
            continue
        yield manifest


def newest_complete(gcs: Any, bucket: str, prefix: str, job: str) -> CheckpointManifest | None:
    return next(complete_checkpoints(gcs, bucket, prefix, job), None)


def download_checkpoint(
    gcs: Any, bucket: str, prefix: str, manifest: CheckpointManifest, to_dir: Path
) -> Path:
    """Download and verify into `<to_dir>/step-<N>/` (COMPLETE written last); raise ChecksumError on a
    mismatch. A verified local copy is reused."""
    final = to_dir / step_dir_name(manifest.step)
    files = manifest.files.files
    if (final / COMPLETE_MARKER).is_file() and all(
        verify_file(final, e) is FileState.VERIFIED for e in files
    ):
        return final
    partial = to_dir / f".{step_dir_name(manifest.step)}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    head = step_prefix(prefix, manifest.job, manifest.step)
    store = gcs.bucket(bucket_name(bucket))

    def get(entry: Any) -> None:
        target = entry.local_path(partial)
        target.parent.mkdir(parents=True, exist_ok=True)
        store.blob(head + entry.path).download_to_filename(str(target))

    _parallel(get, files)
    for entry in files:
        state = verify_file(partial, entry)
        if state is not FileState.VERIFIED:
            shutil.rmtree(partial, ignore_errors=True)
            raise ChecksumError(
                f"checkpoint {manifest.job} step {manifest.step}: {entry.path}: {state.value}"
            )
    (partial / COMPLETE_MARKER).write_text("")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def apply_retention(gcs: Any, bucket: str, prefix: str, job: str, keep_last: int) -> list[int]:
    """Delete checkpoints older than the newest `keep_last` complete ones, manifests first."""
    listing = list_objects(gcs, bucket, job_prefix(prefix, job))
    complete = [m.step for m in islice(complete_checkpoints(gcs, bucket, prefix, job), keep_last)]
    plan = retention_plan(complete, group_listing(prefix, job, listing), keep_last)
    doomed = tuple(step_prefix(prefix, job, s) for s in plan.delete)
    keys = sorted(
        (k for k, _ in listing if k.startswith(doomed)), key=lambda k: not k.endswith(MANIFEST_NAME)
    )
    store = gcs.bucket(bucket_name(bucket))
    for key in keys:  # one by one, manifests first: a half-deleted checkpoint must already not exist
        store.blob(key).delete()
    return list(plan.delete)


# --- recovery pass -------------------------------------------------------------------------------------------

RECOVERY_PERMISSIONS = ("compute.instances.list", "compute.zoneOperations.list", "compute.instances.start")
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
) -> list[Recovery]:
    """Start preempted standalone pyctl Spot VMs (label pyctl-capacity=spot) where capacity is back."""
    clients = clients or compute.compute_clients()
    filter_ = compute.label_filter({compute.CAPACITY_LABEL: "spot"}, "TERMINATED")
    listed, missed = compute.list_instances(clients, project, zones, filter_)
    for problem in missed:
        log.warning("spot recovery: %s could not be listed", problem)
    stopped = [r for r in listed if r.status == "TERMINATED"]
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
    """Start every VM decided so, then wait for the operations; a refusal for lack of capacity is an
    outcome of its own (`no-capacity`, retried next pass), not a failure."""
    import time

    from google.api_core.exceptions import GoogleAPICallError

    started: list[tuple[Recovery, Any]] = []
    for d in decisions:
        if d.action != "start" or dry_run:
            started.append((replace(d, outcome="dry-run") if d.action == "start" else d, None))
            continue
        try:
            started.append((d, clients.instances.start_unary(project=project, zone=d.zone, instance=d.name)))
        except GoogleAPICallError as exc:
            started.append((replace(d, outcome="failed", reason=f"{d.reason}; {exc}"), None))
    deadline = time.monotonic() + timeout
    out = []
    for d, operation in started:
        if operation is None:
            out.append(d)
            continue
        try:
            compute.wait_for_operation(
                clients, project, operation, timeout=max(deadline - time.monotonic(), 1.0)
            )
        except compute.OperationError as exc:
            if CAPACITY_CODES.intersection(exc.codes):
                out.append(
                    replace(
                        d, outcome="no-capacity", reason=f"{d.reason}; no capacity yet, retried next pass"
                    )
                )
            else:
                out.append(replace(d, outcome="failed", reason=f"{d.reason}; {exc}"))
        except GoogleAPICallError as exc:
            out.append(replace(d, outcome="failed", reason=f"{d.reason}; {exc}"))
        else:
            out.append(replace(d, outcome="done"))
    return out

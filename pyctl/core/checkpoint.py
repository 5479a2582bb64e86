"""The checkpoint protocol, shared by the node agent, the recovery Lambda and `pyctl jobs status`.

Layout in the object store (one prefix per checkpoint, the manifest written last):

    <prefix>/checkpoints/<job>/step-<N>/<relative file path>
    <prefix>/checkpoints/<job>/step-<N>/MANIFEST.json   {"job", "step", "time", "files": [...]}

Rule: a checkpoint without a valid manifest does not exist. "Valid" means the manifest parses, names
this job and step, and every file it lists is stored with the listed size (the sha256 digests are
checked when the files are downloaded). An upload killed midway leaves files without a manifest and
is therefore never chosen for resume.

Locally, the trainer writes `<checkpoint-dir>/step-<N>/` and the file `COMPLETE` into it last.
Everything here is pure (no SDK); hashing and file listing come from `pyctl.core.manifest`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pyctl.core.manifest import Manifest, ManifestError, build_manifest

MANIFEST_NAME = "MANIFEST.json"
COMPLETE_MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(0|[1-9][0-9]*)$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_job_name(job: str) -> str:
    """Return `job` if it is usable as one object-key segment, else raise ManifestError."""
    if not _JOB_NAME.match(job):
        raise ManifestError(
            f"job name {job!r} must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit"
        )
    return job


def step_dir_name(step: int) -> str:
    return f"step-{step}"


def parse_step_dir(name: str) -> int | None:
    """The step number of a `step-<N>` directory name, or None for anything else."""
    match = _STEP_DIR.match(name)
    return int(match.group(1)) if match else None


def job_prefix(prefix: str, job: str) -> str:
    """`<prefix>/checkpoints/<job>/` (no leading slash; an empty prefix is allowed)."""
    head = prefix.strip("/")
    return f"{head + '/' if head else ''}checkpoints/{check_job_name(job)}/"


def step_prefix(prefix: str, job: str, step: int) -> str:
    return f"{job_prefix(prefix, job)}{step_dir_name(step)}/"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time as IMDS, EventBridge and our manifests write it (`...Z`)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CheckpointManifest:
    """A checkpoint's manifest: which job and step, when it was taken, and its files."""

    job: str
    step: int
    time: datetime
    files: Manifest

    def to_json(self) -> str:
        attributes = {"job": self.job, "step": self.step, "time": format_time(self.time)}
        return Manifest(files=self.files.files, attributes=attributes).to_json()

    @classmethod
    def from_json(cls, text: str | bytes, *, job: str, step: int) -> CheckpointManifest:
        """Parse and check a manifest found at the key of `job`/`step`; raise ManifestError if it lies."""
        files = Manifest.from_json(text)
        attrs = files.attributes
        if attrs.get("job") != job:
            raise ManifestError(f"manifest names job {attrs.get('job')!r}, stored under job {job!r}")
        raw_step = attrs.get("step")
        if isinstance(raw_step, bool) or raw_step != step:
            raise ManifestError(f"manifest names step {raw_step!r}, stored under step-{step}")
        raw_time = attrs.get("time")
        if not isinstance(raw_time, str):
            raise ManifestError("manifest 'time' must be an ISO 8601 string")
        try:
            moment = parse_time(raw_time)
        except ValueError:
            raise ManifestError(f"manifest 'time' {raw_time!r} is not ISO 8601") from None
        if any(entry.path == MANIFEST_NAME for entry in files.files):
            raise ManifestError(f"manifest lists {MANIFEST_NAME} itself")
        return cls(job=job, step=step, time=moment, files=Manifest(files=files.files))


def build_checkpoint_manifest(root: Path, *, job: str, step: int, now: datetime) -> CheckpointManifest:
    """Hash a local `step-<N>` directory; the COMPLETE marker is local-only (the manifest replaces it)."""
    files = build_manifest(root, skip=lambda rel: rel in (COMPLETE_MARKER, MANIFEST_NAME))
    return CheckpointManifest(job=check_job_name(job), step=step, time=now, files=files)


# --- remote listing -> the newest complete checkpoint -------------------------------------------------


@dataclass(frozen=True)
class StoredStep:
    """What a listing shows under one `step-<N>/` prefix: relative object paths and their sizes."""

    step: int
    objects: Mapping[str, int]

    @property
    def has_manifest(self) -> bool:
        return MANIFEST_NAME in self.objects


def group_listing(prefix: str, job: str, objects: Iterable[tuple[str, int]]) -> dict[int, StoredStep]:
    """Group `(key, size)` pairs listed under the job's prefix by step; other keys are ignored."""
    head = job_prefix(prefix, job)
    grouped: dict[int, dict[str, int]] = {}
    for key, size in objects:
        if not key.startswith(head):
            continue
        step_name, _, rel = key[len(head) :].partition("/")
        step = parse_step_dir(step_name)
        if step is None or not rel:
            continue
        grouped.setdefault(step, {})[rel] = size
    return {step: StoredStep(step, objs) for step, objs in grouped.items()}


def manifest_problem(stored: StoredStep, manifest: CheckpointManifest) -> str | None:
    """Why a parsed manifest does not describe what is stored (a missing or short file), or None."""
    for entry in manifest.files.files:
        size = stored.objects.get(entry.path)
        if size is None:
            return f"{entry.path} is listed in the manifest but not stored"
        if size != entry.size:
            return f"{entry.path} is stored with {size} bytes, the manifest says {entry.size}"
    return None


def candidate_steps(steps: Mapping[int, StoredStep]) -> list[int]:
    """Steps worth reading a manifest for, newest first (a step without a manifest does not exist)."""
    return sorted((s for s, stored in steps.items() if stored.has_manifest), reverse=True)


# --- local checkpoint directories ---------------------------------------------------------------------


def complete_local_steps(checkpoint_dir: Path) -> list[int]:
    """Steps under `checkpoint_dir` whose `step-<N>/COMPLETE` exists, ascending."""
    if not checkpoint_dir.is_dir():
        return []
    steps = []
    for child in checkpoint_dir.iterdir():
        step = parse_step_dir(child.name)
        if step is not None and (child / COMPLETE_MARKER).is_file():
            steps.append(step)
    return sorted(steps)


def next_upload(complete_steps: Iterable[int], uploaded: Iterable[int]) -> int | None:
    """The newest complete local step newer than everything uploaded; older ones are superseded."""
    newest = max(complete_steps, default=None)
    done = max(uploaded, default=None)
    if newest is None or (done is not None and newest <= done):
        return None
    return newest


# --- retention ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[int, ...]
    delete: tuple[int, ...]


def retention_plan(
    complete_steps: Iterable[int], stored_steps: Iterable[int], keep_last: int
) -> RetentionPlan:
    """Keep the newest `keep_last` complete checkpoints; delete older complete ones and abandoned
    partial uploads older than the oldest kept. A partial upload newer than that may be in flight.
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    complete = sorted(set(complete_steps), reverse=True)
    kept = tuple(complete[:keep_last])
    if not kept:
        return RetentionPlan(keep=(), delete=())
    oldest_kept = min(kept)
    delete = tuple(sorted(s for s in set(stored_steps) | set(complete) if s < oldest_kept))
    return RetentionPlan(keep=tuple(sorted(kept)), delete=delete)


# --- node agent decisions -----------------------------------------------------------------------------


class NoticeKind(Enum):
    INTERRUPTION = "interruption"
    REBALANCE = "rebalance"


@dataclass(frozen=True)
class Notice:
    """A notice read from IMDS: an interruption (`spot/instance-action`) or a rebalance recommendation."""

    kind: NoticeKind
    time: datetime
    action: str = ""

    @classmethod
    def interruption(cls, document: Mapping[str, Any]) -> Notice:
        return cls(
            NoticeKind.INTERRUPTION, parse_time(str(document["time"])), str(document.get("action", ""))
        )

    @classmethod
    def rebalance(cls, document: Mapping[str, Any]) -> Notice:
        return cls(NoticeKind.REBALANCE, parse_time(str(document["noticeTime"])))


class AgentAction(Enum):
    """What the agent does about a notice."""

    NOTHING = "nothing"
    EARLY_CHECKPOINT = "early-checkpoint"  # rebalance: ask for a checkpoint, keep training, never drain
    FINAL_CHECKPOINT = "final-checkpoint"  # interruption: checkpoint, upload before the deadline, drain


def agent_action(notice: Notice | None, handled: Iterable[Notice]) -> AgentAction:
    """Each notice is acted on once; after an interruption, rebalance recommendations are moot."""
    seen = set(handled)
    if notice is None or notice in seen:
        return AgentAction.NOTHING
    if notice.kind is NoticeKind.INTERRUPTION:
        return AgentAction.FINAL_CHECKPOINT
    if any(n.kind is NoticeKind.INTERRUPTION for n in seen):
        return AgentAction.NOTHING
    return AgentAction.EARLY_CHECKPOINT


def notice_deadline(notice_time: datetime, upload_margin: timedelta) -> datetime:
    """Until when the agent waits for the trainer's checkpoint: the notice time minus the upload margin."""
    return notice_time - upload_margin


def time_lost(interrupted_at: datetime, checkpoint_time: datetime | None) -> timedelta | None:
    """Estimated training time lost by an interruption: the time since the last complete checkpoint
    (zero when the checkpoint was taken on the notice); None when the job had no checkpoint at all.
    """
    if checkpoint_time is None:
        return None
    return max(interrupted_at - checkpoint_time, timedelta(0))

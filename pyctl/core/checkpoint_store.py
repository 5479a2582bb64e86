"""Checkpoint transfers over any object store: upload with the manifest last, the complete checkpoints
newest first, download with verification, retention. The store is a `pyctl.core.object_store.ObjectStore`
(S3 or GCS, the same one the model cache uses); its `prefix` is the checkpoints' key prefix. The protocol
rules live in `pyctl.core.checkpoint`. No SDK here: files and the protocol.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import islice
from pathlib import Path

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
from pyctl.core.object_store import ObjectStore, SizeMismatch, StoredObject, Transfer
from pyctl.errors import PyctlError

log = logging.getLogger(__name__)


class ChecksumError(PyctlError):
    """A downloaded checkpoint file does not match its manifest."""


class _Outcomes:
    """The errors of one batch of transfers, by key (stores report from their worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors: dict[str, BaseException] = {}

    def done(self, transfer: Transfer, error: BaseException | None, digest: str | None = None) -> None:
        if error is not None:
            with self._lock:
                self.errors.setdefault(transfer.key, error)

    def first(self, transfers: Sequence[Transfer]) -> tuple[Transfer, BaseException] | None:
        """The first failed transfer in the order given (a stable error for the caller)."""
        return next(((t, self.errors[t.key]) for t in transfers if t.key in self.errors), None)


def _pairs(listing: Sequence[StoredObject]) -> list[tuple[str, int]]:
    return [(o.key, o.size) for o in listing]


def upload_checkpoint(
    store: ObjectStore, job: str, step: int, step_dir: Path, *, now: datetime
) -> CheckpointManifest:
    """Upload every file of a local `step-<N>` directory in parallel, then MANIFEST.json last (only if
    every file went up; else the first error is raised and the checkpoint does not exist)."""
    manifest = build_checkpoint_manifest(step_dir, job=job, step=step, now=now)
    head = step_prefix(store.prefix, job, step)
    transfers = [Transfer(e, head + e.path, e.local_path(step_dir)) for e in manifest.files.files]
    outcomes = _Outcomes()
    store.upload(transfers, outcomes.done)
    failed = outcomes.first(transfers)
    if failed is not None:
        raise failed[1]
    store.put(head + MANIFEST_NAME, manifest.to_json().encode(), "application/json")
    log.info(
        "uploaded checkpoint %s (%d files, %d bytes)",
        store.url(head),
        len(manifest.files.files),
        manifest.files.total_size,
    )
    return manifest


def complete_checkpoints(store: ObjectStore, job: str) -> Iterator[CheckpointManifest]:
    """The job's complete checkpoints, newest first. Steps without a manifest, with a manifest that does
    not parse, or whose files are not all stored, are skipped: they do not exist.
    """
    prefix = store.prefix
    steps = group_listing(prefix, job, _pairs(store.list(job_prefix(prefix, job))))
    for step in candidate_steps(steps):
        key = step_prefix(prefix, job, step) + MANIFEST_NAME
        raw = store.get(key)
        if raw is None:  # deleted since the listing (retention on another node)
            log.warning("skipping %s: gone since it was listed", store.url(key))
            continue
        try:
            manifest = CheckpointManifest.from_json(raw, job=job, step=step)
        except ManifestError as exc:
            log.warning("skipping %s: %s", store.url(key), exc)
            continue
        problem = manifest_problem(steps[step], manifest)
        if problem:
            log.warning("skipping checkpoint step %d: %s", step, problem)
            continue
        yield manifest


def newest_complete(store: ObjectStore, job: str) -> CheckpointManifest | None:
    return next(complete_checkpoints(store, job), None)


def download_checkpoint(store: ObjectStore, manifest: CheckpointManifest, to_dir: Path) -> Path:
    """Download and verify every file into `<to_dir>/step-<N>/` (COMPLETE written last, as the trainer
    would). A verified local copy is reused. Raise ChecksumError if any file differs from the manifest.
    """
    final = to_dir / step_dir_name(manifest.step)
    files = manifest.files.files
    if (final / COMPLETE_MARKER).is_file() and all(
        verify_file(final, e) is FileState.VERIFIED for e in files
    ):
        return final
    partial = to_dir / f".{step_dir_name(manifest.step)}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    head = step_prefix(store.prefix, manifest.job, manifest.step)
    transfers = [Transfer(e, head + e.path, e.local_path(partial)) for e in files]
    for transfer in transfers:
        transfer.local.parent.mkdir(parents=True, exist_ok=True)
    outcomes = _Outcomes()
    store.download(transfers, lambda nbytes: None, outcomes.done)
    failed = outcomes.first(transfers)
    if failed is not None:
        shutil.rmtree(partial, ignore_errors=True)
        transfer, error = failed
        if isinstance(error, SizeMismatch):  # the stored bytes are not the manifest's
            raise ChecksumError(
                f"checkpoint {manifest.job} step {manifest.step}: {transfer.entry.path}: {error}"
            ) from error
        raise error
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


def apply_retention(store: ObjectStore, job: str, keep_last: int) -> list[int]:
    """Delete checkpoints older than the newest `keep_last` complete ones; return the deleted steps."""
    prefix = store.prefix
    listing = _pairs(store.list(job_prefix(prefix, job)))
    complete = [m.step for m in islice(complete_checkpoints(store, job), keep_last)]
    plan = retention_plan(complete, group_listing(prefix, job, listing), keep_last)
    doomed = tuple(step_prefix(prefix, job, s) for s in plan.delete)
    # Manifests first: a half-deleted checkpoint must already not exist.
    keys = sorted(
        (k for k, _ in listing if k.startswith(doomed)), key=lambda k: not k.endswith("/" + MANIFEST_NAME)
    )
    if keys:
        store.delete(keys)
        log.info("retention: deleted steps %s of job %s", list(plan.delete), job)
    return list(plan.delete)

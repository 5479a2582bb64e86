"""Checkpoint transfers over any object store: upload with the manifest last, the complete checkpoints
newest first, download with verification, retention. The cloud layers (`pyctl.clouds.aws.checkpoints`,
GCS alike) only adapt their SDK to the small `ObjectStore` protocol below; the protocol rules live in
`pyctl.core.checkpoint`. No SDK here: files, threads and the protocol.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Protocol, TypeVar

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
_T = TypeVar("_T")


class ChecksumError(PyctlError):
    """A downloaded checkpoint file does not match its manifest."""


class ObjectStore(Protocol):
    """The few object-store calls checkpoints need, keys relative to one bucket."""

    url: str  # for messages: s3://bucket, gs://bucket

    def list(self, key_prefix: str) -> list[tuple[str, int]]: ...  # (key, size) of every object

    def read(self, key: str) -> bytes: ...

    def upload_file(self, path: Path, key: str) -> None: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def download_file(self, key: str, path: Path) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...  # in the order given


def parallel(fn: Callable[[_T], object], items: Iterable[_T], workers: int = FILE_WORKERS) -> None:
    """Run `fn` over `items` on a thread pool; the first exception is raised once all have finished."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def upload_checkpoint(
    store: ObjectStore, prefix: str, job: str, step: int, step_dir: Path, *, now: datetime
) -> CheckpointManifest:
    """Upload every file of a local `step-<N>` directory in parallel, then MANIFEST.json last."""
    manifest = build_checkpoint_manifest(step_dir, job=job, step=step, now=now)
    head = step_prefix(prefix, job, step)
    parallel(lambda e: store.upload_file(e.local_path(step_dir), head + e.path), manifest.files.files)
    store.put(head + MANIFEST_NAME, manifest.to_json().encode(), "application/json")
    log.info(
        "uploaded checkpoint %s/%s (%d files, %d bytes)",
        store.url,
        head,
        len(manifest.files.files),
        manifest.files.total_size,
    )
    return manifest


def complete_checkpoints(store: ObjectStore, prefix: str, job: str) -> Iterator[CheckpointManifest]:
    """The job's complete checkpoints, newest first. Steps without a manifest, with a manifest that does
    not parse, or whose files are not all stored, are skipped: they do not exist.
    """
    steps = group_listing(prefix, job, store.list(job_prefix(prefix, job)))
    for step in candidate_steps(steps):
        key = step_prefix(prefix, job, step) + MANIFEST_NAME
        try:
            manifest = CheckpointManifest.from_json(store.read(key), job=job, step=step)
        except ManifestError as exc:
            log.warning("skipping %s/%s: %s", store.url, key, exc)
            continue
        problem = manifest_problem(steps[step], manifest)
        if problem:
            log.warning("skipping checkpoint step %d: %s", step, problem)
            continue
        yield manifest


def newest_complete(store: ObjectStore, prefix: str, job: str) -> CheckpointManifest | None:
    return next(complete_checkpoints(store, prefix, job), None)


def download_checkpoint(store: ObjectStore, prefix: str, manifest: CheckpointManifest, to_dir: Path) -> Path:
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
    head = step_prefix(prefix, manifest.job, manifest.step)

    def get(entry_path: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        store.download_file(head + entry_path, local)

    parallel(lambda e: get(e.path, e.local_path(partial)), files)
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


def apply_retention(store: ObjectStore, prefix: str, job: str, keep_last: int) -> list[int]:
    """Delete checkpoints older than the newest `keep_last` complete ones; return the deleted steps."""
    listing = store.list(job_prefix(prefix, job))
    complete = [m.step for m in islice(complete_checkpoints(store, prefix, job), keep_last)]
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

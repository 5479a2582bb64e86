"""Checkpoints in S3: parallel upload (multipart for large files) with the manifest last, listing,
download with verification, and retention. The protocol itself is in `pyctl.core.checkpoint`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

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

# Files at or above the threshold go up in parts, several parts at a time (boto3 managed transfer).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
FILE_WORKERS = 8
PART_WORKERS = 4
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class ChecksumError(PyctlError):
    """A downloaded checkpoint file does not match its manifest."""


def transfer_config(
    multipart_threshold: int = MULTIPART_THRESHOLD, multipart_chunksize: int = MULTIPART_CHUNKSIZE
) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
        max_concurrency=PART_WORKERS,
        use_threads=True,
    )


def s3_client(region: str | None = None) -> Any:
    from pyctl.clouds.aws import client

    # Every file worker may run PART_WORKERS part uploads at once: size the pool for all of them.
    return client("s3", region, max_pool_connections=FILE_WORKERS * PART_WORKERS + 2)


def upload_checkpoint(
    s3: Any,
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
    config = config or transfer_config()

    def put(entry_path: str) -> None:
        local = manifest.files.entry(entry_path)
        assert local is not None
        s3.upload_file(str(local.local_path(step_dir)), bucket, head + entry_path, Config=config)

    with ThreadPoolExecutor(max_workers=FILE_WORKERS) as pool:
        for future in [pool.submit(put, e.path) for e in manifest.files.files]:
            future.result()
    s3.put_object(
        Bucket=bucket,
        Key=head + MANIFEST_NAME,
        Body=manifest.to_json().encode(),
        ContentType="application/json",
    )
    log.info(
        "uploaded checkpoint s3://%s/%s (%d files, %d bytes)",
        bucket,
        head,
        len(manifest.files.files),
        manifest.files.total_size,
    )
    return manifest


def list_objects(s3: Any, bucket: str, key_prefix: str) -> list[tuple[str, int]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix)
    return [(obj["Key"], int(obj["Size"])) for page in pages for obj in page.get("Contents", [])]


def complete_checkpoints(s3: Any, bucket: str, prefix: str, job: str) -> Iterator[CheckpointManifest]:
    """The job's complete checkpoints, newest first. Steps without a manifest, with a manifest that does
    not parse, or whose files are not all stored, are skipped: they do not exist.
    """
    steps = group_listing(prefix, job, list_objects(s3, bucket, job_prefix(prefix, job)))
    for step in candidate_steps(steps):
        key = step_prefix(prefix, job, step) + MANIFEST_NAME
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            manifest = CheckpointManifest.from_json(body, job=job, step=step)
        except ManifestError as exc:
            log.warning("skipping s3://%s/%s: %s", bucket, key, exc)
            continue
        problem = manifest_problem(steps[step], manifest)
        if problem:
            log.warning("skipping checkpoint step %d: %s", step, problem)
            continue
        yield manifest


def newest_complete(s3: Any, bucket: str, prefix: str, job: str) -> CheckpointManifest | None:
    return next(complete_checkpoints(s3, bucket, prefix, job), None)


def download_checkpoint(
    s3: Any, bucket: str, prefix: str, manifest: CheckpointManifest, to_dir: Path
) -> Path:
    """Download and verify every file into `<to_dir>/step-<N>/` (COMPLETE written last, as the trainer
    would). A verified local copy is reused. Raise ChecksumError if any file differs from the manifest.
    """
    final = to_dir / step_dir_name(manifest.step)
    if (final / COMPLETE_MARKER).is_file() and _verified(final, manifest):
        return final
    partial = to_dir / f".{step_dir_name(manifest.step)}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    head = step_prefix(prefix, manifest.job, manifest.step)

    def get(entry_path: str) -> None:
        entry = manifest.files.entry(entry_path)
        assert entry is not None
        target = entry.local_path(partial)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, head + entry.path, str(target), Config=transfer_config())

    with ThreadPoolExecutor(max_workers=FILE_WORKERS) as pool:
        for future in [pool.submit(get, e.path) for e in manifest.files.files]:
            future.result()
    for entry in manifest.files.files:
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


def _verified(root: Path, manifest: CheckpointManifest) -> bool:
    return all(verify_file(root, e) is FileState.VERIFIED for e in manifest.files.files)


def apply_retention(s3: Any, bucket: str, prefix: str, job: str, keep_last: int) -> list[int]:
    """Delete checkpoints older than the newest `keep_last` complete ones; return the deleted steps."""
    listing = list_objects(s3, bucket, job_prefix(prefix, job))
    stored = group_listing(prefix, job, listing)
    complete: list[int] = []
    for manifest in complete_checkpoints(s3, bucket, prefix, job):
        complete.append(manifest.step)
        if len(complete) == keep_last:
            break
    plan = retention_plan(complete, stored, keep_last)
    doomed = {step_prefix(prefix, job, s) for s in plan.delete}
    keys = [key for key, _ in listing if any(key.startswith(p) for p in doomed)]
    # Manifests first: a half-deleted checkpoint must already not exist.
    keys.sort(key=lambda k: not k.endswith("/" + MANIFEST_NAME))
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    if plan.delete:
        log.info("retention: deleted steps %s of job %s", list(plan.delete), job)
    return list(plan.delete)

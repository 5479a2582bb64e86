"""Checkpoints in S3: the S3 adapter of `pyctl.core.checkpoint_store` (boto3's managed transfer, so
large files go up and down in parts), and the S3-flavoured entry points the agent and the Lambda call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pyctl.core import checkpoint_store
from pyctl.core.checkpoint import CheckpointManifest
from pyctl.core.checkpoint_store import FILE_WORKERS, ChecksumError

__all__ = [
    "ChecksumError",
    "S3Store",
    "apply_retention",
    "complete_checkpoints",
    "download_checkpoint",
    "newest_complete",
    "s3_client",
    "transfer_config",
    "upload_checkpoint",
]

# Files at or above the threshold are transferred in parts, several parts at a time.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
PART_WORKERS = 4
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


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

    # Every file worker may run PART_WORKERS part transfers at once: size the pool for all of them.
    return client("s3", region, max_pool_connections=FILE_WORKERS * PART_WORKERS + 2)


class S3Store:
    """One bucket, through a boto3 S3 client (`pyctl.core.checkpoint_store.ObjectStore`)."""

    def __init__(self, s3: Any, bucket: str, config: Any = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.url = f"s3://{bucket}"
        self.config = config or transfer_config()

    def list(self, key_prefix: str) -> list[tuple[str, int]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key_prefix)
        return [(obj["Key"], int(obj["Size"])) for page in pages for obj in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def upload_file(self, path: Path, key: str) -> None:
        self.s3.upload_file(str(path), self.bucket, key, Config=self.config)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def download_file(self, key: str, path: Path) -> None:
        self.s3.download_file(self.bucket, key, str(path), Config=self.config)

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


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
    return checkpoint_store.upload_checkpoint(
        S3Store(s3, bucket, config), prefix, job, step, step_dir, now=now
    )


def complete_checkpoints(s3: Any, bucket: str, prefix: str, job: str) -> Iterator[CheckpointManifest]:
    return checkpoint_store.complete_checkpoints(S3Store(s3, bucket), prefix, job)


def newest_complete(s3: Any, bucket: str, prefix: str, job: str) -> CheckpointManifest | None:
    return checkpoint_store.newest_complete(S3Store(s3, bucket), prefix, job)


def download_checkpoint(
    s3: Any, bucket: str, prefix: str, manifest: CheckpointManifest, to_dir: Path
) -> Path:
    return checkpoint_store.download_checkpoint(S3Store(s3, bucket), prefix, manifest, to_dir)


def apply_retention(s3: Any, bucket: str, prefix: str, job: str, keep_last: int) -> list[int]:
    return checkpoint_store.apply_retention(S3Store(s3, bucket), prefix, job, keep_last)

"""Objects in S3: `S3Store`, the S3 implementation of `pyctl.core.object_store.ObjectStore`, used by the
model cache and by checkpoints alike. Parallel multipart upload (s3transfer) and parallel ranged GETs.

Download splits every file into `part_size` ranges (default: automatic, see
`pyctl.core.models.auto_part_size`) and runs them all through ONE pool of `concurrency`
threads (one HTTP connection each), so small and large files keep every connection busy. Each thread
streams its range in `read_size` pieces straight into the temporary file at its offset (os.pwrite): memory
stays near concurrency x read_size whatever the model size. The endpoint comes from AWS_ENDPOINT_URL when
set (boto3 reads it itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyctl.clouds.aws import client
from pyctl.core.models import (
    DEFAULT_CONCURRENCY,
    MIB,
    UPLOAD_PART_SIZE,
    ByteRange,
    auto_part_size,
    plan_ranges,
    upload_part_size,
)
from pyctl.core.object_store import (
    BucketStore,
    BucketUnavailable,
    DownloadDone,
    SizeMismatch,
    StoredObject,
    Transfer,
    TransferCancelled,
    TransferDone,
)

READ_SIZE = 1 * MIB
# Attempts per ranged GET for errors while streaming the body (botocore retries the request itself),
# with a linear backoff and jitter between them.
PART_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.2
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class S3Store(BucketStore):
    """`pyctl.core.object_store.ObjectStore` over one S3 bucket (and an optional key prefix).

    `client`: a boto3 S3 client to use (the recovery Lambda's own); else one is built, its connection
    pool sized for `concurrency`.
    """

    scheme = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_size: int | None = None,
        read_size: int = READ_SIZE,
        client: Any = None,
    ) -> None:
        super().__init__(bucket, prefix, concurrency, part_size)
        self.read_size = read_size
        self._s3 = client or _client(region, concurrency)

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def list(self, key_prefix: str) -> list[StoredObject]:
        with self._bucket_errors():
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key_prefix)
            return [
                StoredObject(obj["Key"], int(obj["Size"]), obj["LastModified"])
                for page in pages
                for obj in page.get("Contents", [])
            ]

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._bucket_errors():
            try:
                response = self._s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = response["Body"].read()
            return body

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._bucket_errors():
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, keys: Sequence[str]) -> None:
        with self._bucket_errors():
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def upload(self, transfers: Sequence[Transfer], done: TransferDone) -> None:
        """Multipart, parallel uploads of every file through one s3transfer manager."""
        from boto3.s3.transfer import TransferConfig, create_transfer_manager
        from s3transfer.subscribers import BaseSubscriber

        largest = max((t.entry.size for t in transfers), default=0)
        chunk = upload_part_size(largest, self.part_size or UPLOAD_PART_SIZE)
        config = TransferConfig(
            multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=self.concurrency
        )

        class Report(BaseSubscriber):  # type: ignore[misc]
            def __init__(self, transfer: Transfer) -> None:
                self.transfer = transfer

            def on_done(self, future: Any, **kwargs: Any) -> None:
                try:
                    future.result()
                except Exception as exc:
                    done(self.transfer, exc)
                else:
                    done(self.transfer, None)

        with self._bucket_errors(), create_transfer_manager(self._s3, config) as manager:
            for transfer in transfers:
                manager.upload(str(transfer.local), self.bucket, transfer.key, subscribers=[Report(transfer)])

    def download(
        self, transfers: Sequence[Transfer], advance: Callable[[int], None], done: DownloadDone
    ) -> None:
        part_size = self.part_size or auto_part_size(sum(t.entry.size for t in transfers), self.concurrency)
        stop = threading.Event()  # set once a callback cancelled: queued ranges then end at once
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="fetch") as pool:
            for transfer in transfers:
                target = _PartialFile(transfer, plan_ranges(transfer.entry.size, part_size), done)
                if not target.ranges:
                    target.close()
                for byte_range in target.ranges:
                    pool.submit(self._fetch_range, target, byte_range, advance, stop)

    def _fetch_range(
        self,
        target: _PartialFile,
        byte_range: ByteRange,
        advance: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        from botocore.exceptions import ClientError

        error: BaseException | None = None
        if target.failed or stop.is_set():
            target.part_finished(error if target.failed else TransferCancelled("cancelled"))
            return
        for attempt in range(1, PART_ATTEMPTS + 1):
            try:
                self._stream_range(target, byte_range, advance)
                error = None
                break
            except TransferCancelled as exc:
                stop.set()
                error = exc
                break
            except (ClientError, SizeMismatch) as exc:  # botocore retried transient errors already
                error = exc
                break
            except Exception as exc:  # a connection cut mid-body: fetch the rest of the range again
                error = exc
                if attempt < PART_ATTEMPTS:
                    time.sleep(RETRY_BASE_SECONDS * attempt * random.uniform(0.5, 1.5))
        target.part_finished(error)

    def _stream_range(
        self, target: _PartialFile, byte_range: ByteRange, advance: Callable[[int], None]
    ) -> None:
        """GET what is still missing of `byte_range` (a retry resumes where the cut left off), pwrite each
        piece at its offset and hand it to the file's in-order sha256."""
        fd = target.fd
        offset = byte_range.start + target.written(byte_range)
        if offset > byte_range.end:
            return
        response = self._s3.get_object(
            Bucket=self.bucket, Key=target.transfer.key, Range=f"bytes={offset}-{byte_range.end}"
        )
        body = response["Body"]
        total = response.get("ContentRange", "").rpartition("/")[2]
        if total.isdigit() and int(total) != target.transfer.entry.size:
            body.close()
            raise SizeMismatch(f"object is {total} bytes, the manifest says {target.transfer.entry.size}")
        try:
            while offset <= byte_range.end:
                chunk = body.read(min(self.read_size, byte_range.end + 1 - offset))
                if not chunk:
                    break
                os.pwrite(fd, chunk, offset)
                target.wrote(byte_range, offset, chunk)
                offset += len(chunk)
                advance(len(chunk))
        finally:
            body.close()
        if offset != byte_range.end + 1:
            raise OSError(
                f"{target.transfer.key}: range {byte_range.header()} ended after {offset - byte_range.start} bytes"
            )

    @contextlib.contextmanager
    def _bucket_errors(self) -> Iterator[None]:
        """Turn every SDK error (wrong bucket, no access, no credentials, no endpoint) into one clear line
        naming the bucket (BucketUnavailable, exit 1)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "NoSuchBucket":
                raise BucketUnavailable(f"bucket s3://{self.bucket} does not exist") from exc
            if code in ("AccessDenied", "403"):
                raise BucketUnavailable(f"access denied to s3://{self.bucket}: {exc}") from exc
            raise BucketUnavailable(f"s3://{self.bucket}: {_one_line(exc)}") from exc
        except NoCredentialsError as exc:
            raise BucketUnavailable(
                f"s3://{self.bucket}: no AWS credentials found (environment, profile, SSO or instance role)"
            ) from exc
        except BotoCoreError as exc:  # no endpoint, timeouts, unparseable answers
            raise BucketUnavailable(f"cannot reach s3://{self.bucket}: {_one_line(exc)}") from exc


class _PartialFile:
    """The temporary file of one download, written by many ranges and reported once all have ended.

    Opened by its first range (not when queued), so a model of thousands of files holds only about
    `concurrency` descriptors at a time.

    sha256 in order, while the ranges arrive: the bytes at the hash frontier are hashed from memory by
    the thread that just wrote them; bytes written ahead of the frontier (a later range that finished
    first) are read back (page cache) and hashed by whichever thread moves the frontier onto them. One
    thread hashes at a time (`_hashing`); a file is never re-read whole after its last range.
    """

    def __init__(self, transfer: Transfer, ranges: list[ByteRange], done: DownloadDone) -> None:
        self.transfer = transfer
        self.ranges = ranges
        self._done = done
        self._remaining = len(ranges)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.error: BaseException | None = None
        self._written = dict.fromkeys((r.start for r in ranges), 0)  # bytes written from each range's start
        self._digest = hashlib.sha256()
        self._frontier = 0  # bytes hashed so far (a prefix of the file)
        self._hashing = False

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def fd(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.transfer.local, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                os.ftruncate(self._fd, self.transfer.entry.size)
            return self._fd

    def written(self, byte_range: ByteRange) -> int:
        with self._lock:
            return self._written[byte_range.start]

    def wrote(self, byte_range: ByteRange, offset: int, chunk: bytes) -> None:
        """`chunk` is now at `offset` in the file (inside `byte_range`)."""
        with self._lock:
            self._written[byte_range.start] += len(chunk)
            if self._hashing or offset != self._frontier:
                return  # ahead of the frontier (read back later) or another thread is hashing
            self._hashing = True
        self._digest.update(chunk)
        with self._lock:
            self._frontier += len(chunk)
        self._catch_up()

    def _catch_up(self) -> None:
        """Hash what is already written past the frontier (read back), then give up the hashing role."""
        while True:
            with self._lock:
                ahead = self._contiguous_after_frontier()
                if ahead == 0 or self.error is not None:
                    self._hashing = False
                    return
                start = self._frontier
            try:
                data = os.pread(self.fd, min(ahead, READ_SIZE * 8), start)
            except OSError:
                with self._lock:
                    self._hashing = False  # the frontier stops: the model cache hashes the file instead
                raise
            self._digest.update(data)
            with self._lock:
                self._frontier += len(data)

    def _contiguous_after_frontier(self) -> int:
        """Bytes written from the frontier on without a gap (lock held)."""
        for r in self.ranges:
            if r.start <= self._frontier <= r.end:
                return r.start + self._written[r.start] - self._frontier
        return 0

    @property
    def sha256(self) -> str | None:
        """The sha256 of the whole file if every byte went through the in-order hash, else None."""
        return self._digest.hexdigest() if self._frontier == self.transfer.entry.size else None

    def part_finished(self, error: BaseException | None) -> None:
        with self._lock:
            if error is not None and self.error is None:
                self.error = error
            self._remaining -= 1
            last = self._remaining == 0
            claim = last and not self._hashing and self.error is None
            if claim:
                self._hashing = True
        if claim:
            self._catch_up()  # bytes nobody was positioned to hash (a range that landed ahead)
        if last:
            self.close()

    def close(self) -> None:
        os.close(self.fd)  # an empty file is created here, by its first and last use
        self._done(self.transfer, self.error, self.sha256 if self.error is None else None)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def _client(region: str | None, concurrency: int) -> Any:
    return client("s3", region, max_pool_connections=concurrency)

"""The one object-store protocol: what the model cache (`pyctl.model_cache`) and checkpoints
(`pyctl.core.checkpoint_store`) need from a bucket. One implementation per cloud: `S3Store` in
`pyctl.clouds.aws.storage`, `GcsStore` in `pyctl.clouds.gcp.storage`; `pyctl.clouds.store.open_store`
builds one from a bucket URL. No SDK here: the protocol, its transfer events and a helper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar, NamedTuple, Protocol, runtime_checkable

from pyctl.core.manifest import FileEntry
from pyctl.errors import PyctlError


@dataclass(frozen=True)
class Transfer:
    """One file to move: its manifest entry, object key, and local path (the temporary file on fetch)."""

    entry: FileEntry
    key: str
    local: Path


# Called by a store when one transfer is finished: the error if it failed, else None.
TransferDone = Callable[[Transfer, BaseException | None], None]
# Called by a store when one download is finished: the error, and the sha256 of the bytes if the store
# computed it while streaming (None: the caller hashes the file).
DownloadDone = Callable[[Transfer, BaseException | None, str | None], None]


class BucketUnavailable(PyctlError):
    """The bucket does not exist, refuses access, cannot be reached or no credentials were found: one
    clear line naming the store; the SDK's error is the __cause__. Exit 1 (a failed cloud call)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message, exit_code)


class TransferCancelled(Exception):
    """Raised by a transfer callback (`advance`) once the caller cancelled (Ctrl-C): the store stops the
    transfer at once, without retrying it."""


class SizeMismatch(Exception):
    """The stored object's size differs from the manifest: fetching it again cannot help."""


class StoredObject(NamedTuple):
    key: str  # relative to the bucket (the store's prefix included)
    size: int
    modified: datetime


@runtime_checkable
class ObjectStore(Protocol):
    """One bucket and a key prefix inside it. Keys passed in and out are relative to the bucket (callers
    build them with the store's `prefix`, as `pyctl.core.models` and `pyctl.core.checkpoint` do)."""

    prefix: str  # key prefix inside the bucket, without surrounding slashes ("" for none)

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What an unreachable or refusing store raises (the SDK's own exception types)."""
        ...

    def url(self, key: str = "") -> str:
        """The URL of `key` for messages, e.g. `s3://bucket/models/m/` (`s3://bucket` for "")."""
        ...

    def list(self, key_prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `key_prefix`."""
        ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` in the order given (callers rely on it: manifests first)."""
        ...

    def upload(self, transfers: Sequence[Transfer], done: TransferDone) -> None:
        """Upload every transfer (local -> key), in parallel; call `done` for each."""
        ...

    def download(
        self, transfers: Sequence[Transfer], advance: Callable[[int], None], done: DownloadDone
    ) -> None:
        """Download every transfer (key -> local, exactly entry.size bytes), in parallel (ranged GETs);
        an object whose size is not entry.size fails with SizeMismatch.

        `advance(n)` reports bytes as they arrive; `done` is called once per transfer, from any thread.
        """
        ...


class BucketStore:
    """What both implementations share: the bucket's name and URL, the key prefix, the transfer tuning
    (`concurrency` connections; `part_size` bytes per ranged GET and multipart chunk, None: automatic)."""

    scheme: ClassVar[str]  # "s3", "gs"

    def __init__(self, bucket: str, prefix: str, concurrency: int, part_size: int | None) -> None:
        self.bucket = bucket.removeprefix(f"{self.scheme}://").strip("/")
        self.prefix = prefix.strip("/")
        self.concurrency = concurrency
        self.part_size = part_size

    def url(self, key: str = "") -> str:
        base = f"{self.scheme}://{self.bucket}"
        return f"{base}/{key}" if key else base

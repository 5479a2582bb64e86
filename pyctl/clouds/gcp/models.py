"""The model cache on Cloud Storage, with google-cloud-storage's transfer manager.

Upload: `upload_many` (threads; the client picks a multipart upload up to 8 MiB, resumable above).
Fetch: `download_chunks_concurrently` per file: `concurrency` threads of ranged media GETs of `part_size`
bytes (default: automatic from the file's size, see `pyctl.core.models.auto_part_size`) written in place into the temporary file, checked against the object's crc32c; the model cache then
checks sha256 against the manifest. STORAGE_EMULATOR_HOST points the client at an emulator or fake.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from pyctl.clouds.gcp import storage_client
from pyctl.core.models import (
    DEFAULT_CONCURRENCY,
    StoredVersion,
    auto_part_size,
    manifest_key,
    model_prefix,
    version_of_manifest_key,
)
from pyctl.errors import PyctlError
from pyctl.model_cache import DownloadDone, Transfer, TransferDone


class GcsModelStore:
    """`pyctl.model_cache.ModelStore` over one GCS bucket (and an optional key prefix)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        project: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_size: int | None = None,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.concurrency = concurrency
        self.part_size = part_size
        self._client = storage_client(project, max_pool_connections=concurrency)
        self._bucket = self._client.bucket(bucket)

    def url(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{key}"

    def versions(self, name: str) -> list[StoredVersion]:
        found = []
        with self._bucket_errors():
            for blob in self._client.list_blobs(self._bucket, prefix=model_prefix(self.prefix, name)):
                version = version_of_manifest_key(blob.name, self.prefix, name)
                if version is not None:
                    found.append(StoredVersion(version, blob.updated))
        return found

    def read_manifest(self, name: str, version: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        blob = self._bucket.blob(manifest_key(self.prefix, name, version))
        with self._bucket_errors():
            try:
                data: bytes = blob.download_as_bytes()
            except NotFound as exc:
                if _is_missing_bucket(exc):
                    raise
                return None
        return data

    def write_manifest(self, name: str, version: str, text: str) -> None:
        blob = self._bucket.blob(manifest_key(self.prefix, name, version))
        with self._bucket_errors():
            blob.upload_from_string(text.encode("utf-8"), content_type="application/json")

    def upload(self, transfers: Sequence[Transfer], done: TransferDone) -> None:
        from google.cloud.storage import transfer_manager

        pairs = [(str(t.local), self._bucket.blob(t.key)) for t in transfers]
        with self._bucket_errors():
            results = transfer_manager.upload_many(
                pairs,
                worker_type=transfer_manager.THREAD,
                max_workers=self.concurrency,
                raise_exception=False,
            )
        for transfer, outcome in zip(transfers, results, strict=True):
            done(transfer, outcome if isinstance(outcome, BaseException) else None)

    def download(
        self, transfers: Sequence[Transfer], advance: Callable[[int], None], done: DownloadDone
    ) -> None:
        """One file at a time, each split into `part_size` ranges over `concurrency` threads."""
        from google.cloud.storage import transfer_manager

        for transfer in transfers:
            try:
                with self._bucket_errors():
                    blob = self._bucket.get_blob(transfer.key)
                if blob is None:
                    raise FileNotFoundError(f"object {self.url(transfer.key)} is missing")
                if blob.size != transfer.entry.size:
                    raise ValueError(f"object is {blob.size} bytes, the manifest says {transfer.entry.size}")
                transfer_manager.download_chunks_concurrently(
                    blob,
                    str(transfer.local),
                    chunk_size=self.part_size or auto_part_size(blob.size, self.concurrency),
                    max_workers=self.concurrency,
                    worker_type=transfer_manager.THREAD,
                    crc32c_checksum=True,
                )
            except PyctlError:
                raise
            except Exception as exc:  # reported per file; the model cache decides to refetch or give up
                done(transfer, exc, None)
                continue
            advance(transfer.entry.size)
            done(transfer, None, None)

    @contextlib.contextmanager
    def _bucket_errors(self) -> Iterator[None]:
        """Turn the errors a user can fix (wrong bucket, no access) into one clear line."""
        from google.api_core.exceptions import Forbidden, NotFound

        try:
            yield
        except NotFound as exc:
            if _is_missing_bucket(exc):
                raise PyctlError(f"bucket gs://{self.bucket_name} does not exist") from None
            raise
        except Forbidden as exc:
            raise PyctlError(f"access denied to gs://{self.bucket_name}: {exc.message}") from None


def _is_missing_bucket(exc: Exception) -> bool:
    return "bucket does not exist" in str(exc).lower()

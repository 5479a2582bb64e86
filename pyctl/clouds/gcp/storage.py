"""Objects in Cloud Storage: `GcsStore`, the GCS implementation of `pyctl.core.object_store.ObjectStore`,
used by the model cache and by checkpoints alike, with google-cloud-storage's transfer manager.

Upload: `upload_many` (threads; the client picks a multipart upload up to 8 MiB, resumable above).
Download: `download_chunks_concurrently` per file: `concurrency` threads of ranged media GETs of `part_size`
bytes (default: automatic from the file's size, see `pyctl.core.models.auto_part_size`) written in place
into the temporary file, checked against the object's crc32c; the caller then checks sha256 against the
manifest. STORAGE_EMULATOR_HOST points the client at an emulator or fake.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pyctl.clouds.gcp import storage_client
from pyctl.core.models import DEFAULT_CONCURRENCY, auto_part_size
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
from pyctl.errors import PyctlError


class GcsStore(BucketStore):
    """`pyctl.core.object_store.ObjectStore` over one GCS bucket (and an optional key prefix).

    `client`: a google.cloud.storage.Client to use; else one is built, its pool sized for `concurrency`.
    """

    scheme = "gs"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        project: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_size: int | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(bucket, prefix, concurrency, part_size)
        with self._bucket_errors():
            self._client = client or storage_client(project, max_pool_connections=concurrency)
        self._bucket = self._client.bucket(self.bucket)

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
        from requests.exceptions import RequestException

        return (GoogleAPIError, GoogleAuthError, RequestException)

    def list(self, key_prefix: str) -> list[StoredObject]:
        with self._bucket_errors():
            return [
                StoredObject(blob.name, int(blob.size), blob.updated)
                for blob in self._client.list_blobs(self._bucket, prefix=key_prefix)
            ]

    def get(self, key: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        with self._bucket_errors():
            try:
                data: bytes = self._bucket.blob(key).download_as_bytes()
            except NotFound as exc:
                if _is_missing_bucket(exc):
                    raise
                return None
        return data

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._bucket_errors():
            self._bucket.blob(key).upload_from_string(data, content_type=content_type)

    def delete(self, keys: Sequence[str]) -> None:
        with self._bucket_errors():
            for key in keys:  # one by one, in the order given (manifests first)
                self._bucket.blob(key).delete()

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
                    raise SizeMismatch(
                        f"object is {blob.size} bytes, the manifest says {transfer.entry.size}"
                    )
                if blob.size == 0:  # no range to ask for
                    transfer.local.write_bytes(b"")
                else:
                    transfer_manager.download_chunks_concurrently(
                        blob,
                        str(transfer.local),
                        chunk_size=self.part_size or auto_part_size(blob.size, self.concurrency),
                        max_workers=self.concurrency,
                        worker_type=transfer_manager.THREAD,
                        crc32c_checksum=True,
                    )
            except BucketUnavailable as exc:
                if _fatal(exc.__cause__):  # no such bucket, no access, no credentials: stop here
                    raise
                done(transfer, exc.__cause__ or exc, None)  # a hiccup: this file is refetched
                continue
            except PyctlError:
                raise
            except Exception as exc:  # reported per file; the caller decides to refetch or give up
                done(transfer, exc, None)
                continue
            try:
                advance(transfer.entry.size)
            except TransferCancelled as exc:
                done(transfer, exc, None)
                return
            done(transfer, None, None)

    @contextlib.contextmanager
    def _bucket_errors(self) -> Iterator[None]:
        """Turn the errors a user can fix (wrong bucket, no access, no credentials, no endpoint) into one
        clear line naming the bucket (BucketUnavailable, exit 1)."""
        from google.api_core.exceptions import Forbidden, GoogleAPIError, NotFound
        from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
        from requests.exceptions import RequestException

        try:
            yield
        except NotFound as exc:
            if _is_missing_bucket(exc):
                raise BucketUnavailable(f"bucket gs://{self.bucket} does not exist") from exc
            raise
        except Forbidden as exc:
            raise BucketUnavailable(f"access denied to gs://{self.bucket}: {exc.message}") from exc
        except DefaultCredentialsError as exc:
            raise BucketUnavailable(
                f"gs://{self.bucket}: no Google credentials found (Application Default Credentials: "
                "gcloud auth application-default login, GOOGLE_APPLICATION_CREDENTIALS or the VM's account)"
            ) from exc
        except (GoogleAuthError, RequestException, GoogleAPIError) as exc:
            raise BucketUnavailable(f"cannot reach gs://{self.bucket}: {_one_line(exc)}") from exc


def _fatal(cause: BaseException | None) -> bool:
    from google.api_core.exceptions import Forbidden, NotFound
    from google.auth.exceptions import DefaultCredentialsError

    return isinstance(cause, (NotFound, Forbidden, DefaultCredentialsError))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def _is_missing_bucket(exc: Exception) -> bool:
    return "bucket does not exist" in str(exc).lower()

"""The object store of a bucket URL: `S3Store` or `GcsStore`, built once (the cloud SDK is imported here,
lazily). The model-cache commands and the node agent call this; nothing else picks a store by cloud."""

from __future__ import annotations

from pyctl.core.models import DEFAULT_CONCURRENCY, BucketRef
from pyctl.core.object_store import ObjectStore


def open_store(
    ref: BucketRef,
    *,
    region: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    part_size: int | None = None,
) -> ObjectStore:
    """The ObjectStore for `ref` (`pyctl.core.models.parse_bucket`); part_size None: automatic."""
    if ref.cloud == "gcp":
        from pyctl.clouds.gcp.storage import GcsStore

        return GcsStore(ref.bucket, ref.prefix, concurrency=concurrency, part_size=part_size)
    from pyctl.clouds.aws.storage import S3Store

    return S3Store(ref.bucket, ref.prefix, region=region, concurrency=concurrency, part_size=part_size)

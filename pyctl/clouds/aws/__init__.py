"""boto3 I/O. Clients are built here and nowhere else.

boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> by itself (tests, emulators, staging), so no
endpoint is passed here.
"""

from __future__ import annotations

from typing import Any

# Transient-error retries with backoff and jitter live in botocore's "standard" mode.
_RETRIES = {"mode": "standard", "max_attempts": 5}


def client(service: str, region: str | None = None, *, max_pool_connections: int = 10) -> Any:
    """A boto3 client for `service` in `region` (default: the environment's region)."""
    import boto3
    from botocore.config import Config

    config = Config(retries=_RETRIES, max_pool_connections=max_pool_connections)  # type: ignore[arg-type]
    return boto3.session.Session().client(service, region_name=region, config=config)

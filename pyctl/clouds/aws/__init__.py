"""boto3 I/O. Clients are built here and nowhere else.

boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> by itself (tests, emulators, staging), so no
endpoint is passed here.
"""

from __future__ import annotations

import threading
from typing import Any

# Transient-error retries with backoff and jitter live in botocore's "standard" mode.
_RETRIES = {"mode": "standard", "max_attempts": 5}

# One session per process: it caches the service models (a fresh session costs ~0.3 s per client).
# Sessions are not thread-safe, clients are: only client creation takes the lock.
_lock = threading.Lock()
_session: Any = None


def client(service: str, region: str | None = None, *, max_pool_connections: int = 10) -> Any:
    """A boto3 client for `service` in `region` (default: the environment's region)."""
    global _session
    import boto3
    from botocore.config import Config

    config = Config(retries=_RETRIES, max_pool_connections=max_pool_connections)
    with _lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, region_name=region, config=config)

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
# Sessions are not thread-safe, clients are: only session use takes the lock.
_lock = threading.Lock()
_session: Any = None


def _shared_session() -> Any:
    global _session
    import boto3

    if _session is None:
        _session = boto3.session.Session()
    return _session


def client(
    service: str,
    region: str | None = None,
    *,
    max_pool_connections: int = 10,
    probe_timeout: float | None = None,
) -> Any:
    """A boto3 client for `service` in `region` (default: the environment's region).

    `probe_timeout`: seconds to connect and to read, and a single attempt, for reachability checks
    that must answer quickly offline.
    """
    from botocore.config import Config

    if probe_timeout is None:
        config = Config(retries=_RETRIES, max_pool_connections=max_pool_connections)
    else:
        config = Config(
            retries={"max_attempts": 1},
            max_pool_connections=max_pool_connections,
            connect_timeout=probe_timeout,
            read_timeout=probe_timeout,
        )
    with _lock:
        return _shared_session().client(service, region_name=region, config=config)


def has_credentials() -> bool:
    """Whether boto3's credential chain (environment, profile, SSO, instance role) finds any."""
    with _lock:
        return _shared_session().get_credentials() is not None

"""Fixtures shared by every test folder: a moto server over real HTTP and a clean AWS environment."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# moto's server logs every request; a failing test's report should show the test's own output.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

# Tests never reach a real cloud: drop anything credential-like from the caller's environment.
for _name in list(os.environ):
    if _name.startswith(("AWS_", "GOOGLE_", "CLOUDSDK_")) and _name != "AWS_CA_BUNDLE":
        del os.environ[_name]
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 - moto's fake credentials
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# The node bundle's dependency wheels: `make install` prefetches them here, so tests never download.
os.environ.setdefault("PYCTL_CACHE_DIR", str(REPO_ROOT / ".cache" / "pyctl"))


class MotoServer:
    """A running moto server: its URL, and a reset that empties every backend."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            resp.read()


@pytest.fixture(scope="session")
def _moto_process() -> Iterator[MotoServer]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def moto_server(_moto_process: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Moto over HTTP with empty state; boto3 clients reach it through AWS_ENDPOINT_URL."""
    _moto_process.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_process.url)
    return _moto_process

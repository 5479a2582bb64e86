"""Fixtures for the GCP tests: a Compute REST fake, a Monitoring gRPC fake, and the real clients on them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.gcp_compute import ComputeFake
from fakes.gcp_monitoring import MonitoringFake
from fakes.gcs_fake import GcsFake
from fakes.metadata_fake import MetadataFake

PROJECT = "gpu-proj"
NOW = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


@contextmanager
def serving_compute(project: str, now: datetime, monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeFake]:
    """A Compute fake for `project`, served while the block runs; every Compute client points at it."""
    fake = ComputeFake(project, now)
    server = fake.serve()
    monkeypatch.setenv("PYCTL_GCP_COMPUTE_ENDPOINT", fake.url)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def compute_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeFake]:
    with serving_compute(PROJECT, NOW, monkeypatch) as fake:
        yield fake


@pytest.fixture(scope="session")
def _monitoring_server() -> Iterator[MonitoringFake]:
    fake = MonitoringFake()
    server = fake.serve()
    try:
        yield fake
    finally:
        server.stop(grace=None)


@pytest.fixture
def monitoring_fake(_monitoring_server: MonitoringFake, monkeypatch: pytest.MonkeyPatch) -> MonitoringFake:
    fake = _monitoring_server
    fake.points.clear()
    fake.requests.clear()
    fake.fail_with = None
    monkeypatch.setenv("PYCTL_GCP_MONITORING_ENDPOINT", fake.endpoint)
    return fake


@pytest.fixture
def clients(compute_fake: ComputeFake) -> Any:
    from pyctl.clouds.gcp import compute

    return compute.compute_clients()


BUCKET = "acme-staging-checkpoints"


@pytest.fixture(scope="session")
def _gcs_server() -> Iterator[GcsFake]:
    fake = GcsFake()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def gcs(_gcs_server: GcsFake, monkeypatch: pytest.MonkeyPatch) -> GcsFake:
    """The GCS fake with one empty bucket; google-cloud-storage reaches it via STORAGE_EMULATOR_HOST."""
    _gcs_server.buckets.clear()
    _gcs_server.requests.clear()
    _gcs_server.corrupt_media.clear()
    _gcs_server.create_bucket(BUCKET)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _gcs_server.url)
    return _gcs_server


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetadataFake]:
    fake = MetadataFake()
    server = fake.serve()
    monkeypatch.setenv("GCE_METADATA_HOST", fake.host)
    try:
        yield fake
    finally:
        fake.preempt()  # releases any waiting request
        server.shutdown()
        server.server_close()

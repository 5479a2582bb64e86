"""Fixtures for the model cache: a small model on disk, an S3 bucket on the moto server, a damaging proxy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.gcs_fake import GcsFake
from fakes.s3_proxy import S3Proxy

BUCKET = "acme-dev-gpu-models"

# name -> size: shards larger than the 1 MiB test part size, small text files, a nested and an empty file.
MODEL_FILES = {
    "model-00001-of-00002.safetensors": 3 * 1024 * 1024 + 17,
    "model-00002-of-00002.safetensors": 2 * 1024 * 1024,
    "config.json": 700,
    "tokenizer/tokenizer.json": 40_000,
    "generation_config.json": 0,
}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    for rel, size in MODEL_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return root


@pytest.fixture
def s3_bucket(moto_server: object) -> str:
    from pyctl.clouds.aws import client

    client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def s3_proxy(moto_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    """A proxy in front of moto; boto3 goes through it (AWS_ENDPOINT_URL points at it)."""
    proxy = S3Proxy(moto_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def _gcs_server() -> Iterator[GcsFake]:
    fake = GcsFake()
    yield fake
    fake.close()


@pytest.fixture
def gcs_fake(_gcs_server: GcsFake, monkeypatch: pytest.MonkeyPatch) -> GcsFake:
    """The GCS JSON API fake with one empty bucket; google-cloud-storage reaches it via STORAGE_EMULATOR_HOST."""
    _gcs_server.buckets.clear()
    _gcs_server.requests.clear()
    _gcs_server.corrupt_media.clear()
    _gcs_server.create_bucket(BUCKET)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _gcs_server.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    return _gcs_server

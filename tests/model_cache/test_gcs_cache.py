"""Model cache on GCS: the real google-cloud-storage client (transfer manager) against a local JSON API fake."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from pyctl import model_cache
from pyctl.agent.fetch_model import fetch_model
from pyctl.clouds.gcp.models import GcsModelStore
from pyctl.core.manifest import Manifest

from .conftest import BUCKET, MODEL_FILES
from .gcs_fake import GcsFake

SHARD = "model-00001-of-00002.safetensors"


def push(model_dir: Path, version: str = "v1") -> Manifest:
    store = GcsModelStore(BUCKET, "team", concurrency=4)
    return model_cache.push_model(store, model_dir, "llama", version, allow_pickle=False, log=lambda _: None)


def fetch(dest: Path, *args: str) -> object:
    argv = ["llama", "--to", str(dest), "--bucket", f"gs://{BUCKET}/team", "--part-size-mib", "1", *args]
    return CliRunner().invoke(fetch_model, [*argv, "--concurrency", "4"])


def test_push_then_fetch_round_trip(gcs_fake: GcsFake, model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "big.safetensors").write_bytes(os.urandom(9 * 1024 * 1024))  # > 8 MiB: a resumable upload
    files = [*MODEL_FILES, "big.safetensors"]
    manifest = push(model_dir)
    assert set(gcs_fake.buckets[BUCKET]) == {
        f"team/models/llama/v1/{rel}" for rel in [*files, "manifest.json"]
    }
    assert any("uploadType=resumable" in p for _, p in gcs_fake.requests)
    assert any("uploadType=multipart" in p for _, p in gcs_fake.requests)
    dest = tmp_path / "out"
    result = fetch(dest)
    assert result.exit_code == 0, result.output
    for rel in files:
        assert (dest / rel).read_bytes() == (model_dir / rel).read_bytes(), rel
    assert Manifest.from_json((dest / model_cache.LOCAL_MANIFEST_NAME).read_text()) == manifest
    assert gcs_fake.media_gets(f"team/models/llama/v1/{SHARD}") == 4  # 1 MiB ranges
    assert gcs_fake.media_gets("team/models/llama/v1/big.safetensors") == 9
    assert "6 fetched, 0 already verified" in result.output
    again = fetch(dest)
    assert again.exit_code == 0, again.output
    assert "0 fetched, 6 already verified" in again.output


def test_corruption_in_transit_is_caught_and_refetched(
    gcs_fake: GcsFake, model_dir: Path, tmp_path: Path
) -> None:
    push(model_dir)
    gcs_fake.corrupt_media[f"team/models/llama/v1/{SHARD}"] = 1
    dest = tmp_path / "out"
    result = fetch(dest)
    assert result.exit_code == 0, result.output
    assert f"{SHARD}: download failed" in result.output and "refetching" in result.output
    assert (dest / SHARD).read_bytes() == (model_dir / SHARD).read_bytes()


def test_corrupted_object_is_reported(gcs_fake: GcsFake, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir)
    key = f"team/models/llama/v1/{SHARD}"
    damaged = bytearray(gcs_fake.buckets[BUCKET][key].data)
    damaged[-1] ^= 0x01
    gcs_fake.put(BUCKET, key, bytes(damaged))  # a consistent object (crc32c matches), the wrong bytes
    result = fetch(tmp_path / "out")
    assert result.exit_code == model_cache.EXIT_INTEGRITY
    assert f"1 file(s) failed verification: {SHARD}: sha256 mismatch" in result.output
    assert not (tmp_path / "out" / SHARD).exists()


def test_missing_model_and_bucket(gcs_fake: GcsFake, tmp_path: Path) -> None:
    result = fetch(tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"pyctl-agent fetch-model: error: model 'llama' not found: no complete version under "
        f"gs://{BUCKET}/team/models/llama/"
    )
    gcs_fake.buckets.clear()
    result = fetch(tmp_path / "out")
    assert result.exit_code == 2
    assert f"bucket gs://{BUCKET} does not exist" in result.output

"""Model cache on GCS: the real google-cloud-storage client (transfer manager) against a local JSON API fake."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from click.testing import CliRunner
from fakes.gcs_fake import GcsFake

from pyctl import model_cache
from pyctl.agent.fetch_model import fetch_model
from pyctl.clouds.gcp.storage import GcsStore
from pyctl.core.manifest import Manifest

from .conftest import BUCKET, MODEL_FILES

SHARD = "model-00001-of-00002.safetensors"
REPO_ROOT = Path(__file__).resolve().parents[2]


def push(model_dir: Path, version: str = "v1") -> Manifest:
    store = GcsStore(BUCKET, "team", concurrency=4)
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
    assert result.exit_code == 1  # a failed cloud call (README's exit codes), not invalid input
    assert f"bucket gs://{BUCKET} does not exist" in result.output


def test_push_command_fills_every_cache_of_the_env(
    gcs_fake: GcsFake, moto_server: object, model_dir: Path, tmp_path: Path
) -> None:
    from pyctl.clouds.aws import client
    from pyctl.commands.model import model

    gcs_fake.create_bucket("acme-staging-gpu-models-gcs")  # staging has model_cache.aws and .gcp
    client("s3").create_bucket(Bucket="acme-staging-gpu-models")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    shutil.copy(REPO_ROOT / "infra/envs/staging/env.yaml", env_dir / "env.yaml")
    (model_dir / "optimizer.pt").write_bytes(b"\x80\x04")
    argv = ["push", str(model_dir), "--name", "llama", "--env", str(env_dir), "--version", "v7"]
    refused = CliRunner().invoke(model, argv)
    assert "refusing pickle-capable file(s) optimizer.pt" in str(refused.exception)
    result = CliRunner().invoke(model, [*argv, "--allow-pickle"])
    assert result.exit_code == 0, result.output
    assert "warning: optimizer.pt is a pickle-capable format" in result.output
    s3_manifest = client("s3").get_object(
        Bucket="acme-staging-gpu-models", Key="models/llama/v7/manifest.json"
    )
    gcs_manifest = gcs_fake.buckets["acme-staging-gpu-models-gcs"]["models/llama/v7/manifest.json"].data
    assert s3_manifest["Body"].read() == gcs_manifest
    only_gcp = CliRunner().invoke(model, [*argv[:-1], "v8", "--allow-pickle", "--cloud", "gcp"])
    assert only_gcp.exit_code == 0, only_gcp.output
    assert "models/llama/v8/manifest.json" in gcs_fake.buckets["acme-staging-gpu-models-gcs"]
    assert "Contents" in client("s3").list_objects_v2(
        Bucket="acme-staging-gpu-models", Prefix="models/llama/v7/"
    )
    assert "Contents" not in client("s3").list_objects_v2(
        Bucket="acme-staging-gpu-models", Prefix="models/llama/v8/"
    )

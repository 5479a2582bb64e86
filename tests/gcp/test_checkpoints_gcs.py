"""Checkpoints in Cloud Storage (the real google-cloud-storage client on the GCS fake): the manifest-last
protocol of pyctl.core.checkpoint, as on S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from fakes.gcs_fake import GcsFake

from pyctl.clouds.gcp.storage import GcsStore
from pyctl.core.checkpoint import MANIFEST_NAME
from pyctl.core.checkpoint_store import (
    ChecksumError,
    apply_retention,
    download_checkpoint,
    newest_complete,
    upload_checkpoint,
)

from .conftest import BUCKET

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JOB = "llama-ft"


def write_step(root: Path, step: int, size: int = 4096) -> Path:
    step_dir = root / f"step-{step}"
    (step_dir / "optim").mkdir(parents=True)
    (step_dir / "model.safetensors").write_bytes(bytes([step % 251]) * size)
    (step_dir / "optim" / "state.bin").write_bytes(b"adam" * (size // 4) + bytes([step % 251]))
    (step_dir / "COMPLETE").write_text("")
    return step_dir


def upload(tmp_path: Path, step: int) -> None:
    store = GcsStore(f"gs://{BUCKET}", "ckpt")
    upload_checkpoint(store, JOB, step, write_step(tmp_path / "local", step), now=NOW)


def test_upload_writes_every_file_then_the_manifest_last(tmp_path: Path, gcs: GcsFake) -> None:
    upload(tmp_path, 100)
    stored = gcs.buckets[BUCKET]
    # Generations grow with every write: the manifest was written after every file it lists.
    newest = max(stored, key=lambda name: stored[name].generation)
    assert newest == f"ckpt/checkpoints/{JOB}/step-100/{MANIFEST_NAME}" and len(stored) == 3
    manifest = json.loads(stored[f"ckpt/checkpoints/{JOB}/step-100/{MANIFEST_NAME}"].data)
    assert {f["path"] for f in manifest["files"]} == {"model.safetensors", "optim/state.bin"}
    assert f"ckpt/checkpoints/{JOB}/step-100/COMPLETE" not in stored  # local-only marker


def test_newest_complete_skips_a_partial_upload_and_a_lying_manifest(tmp_path: Path, gcs: GcsFake) -> None:
    store = GcsStore(BUCKET, "ckpt")
    upload(tmp_path, 100)
    upload(tmp_path, 200)
    # step 300: killed midway, files without a manifest; step 200: a file lost after the manifest.
    gcs.put(BUCKET, f"ckpt/checkpoints/{JOB}/step-300/model.safetensors", b"x" * 10)
    del gcs.buckets[BUCKET][f"ckpt/checkpoints/{JOB}/step-200/optim/state.bin"]
    newest = newest_complete(store, JOB)
    assert newest is not None and newest.step == 100


def test_download_verifies_and_a_corrupted_copy_is_refused(tmp_path: Path, gcs: GcsFake) -> None:
    store = GcsStore(BUCKET, "ckpt")
    upload(tmp_path, 100)
    manifest = newest_complete(store, JOB)
    assert manifest is not None
    path = download_checkpoint(store, manifest, tmp_path / "restore")
    assert (path / "COMPLETE").is_file()
    assert (path / "model.safetensors").read_bytes() == (
        tmp_path / "local/step-100/model.safetensors"
    ).read_bytes()
    # Same size, other bytes (rewritten behind the manifest's back): only the sha256 check can tell.
    gcs.put(BUCKET, f"ckpt/checkpoints/{JOB}/step-100/optim/state.bin", b"adam" * 1024 + b"?")
    with pytest.raises(ChecksumError, match="optim/state.bin"):
        download_checkpoint(store, manifest, tmp_path / "other")
    assert not (tmp_path / "other" / "step-100").exists()


def test_retention_keeps_the_newest_complete_ones(tmp_path: Path, gcs: GcsFake) -> None:
    store = GcsStore(BUCKET, "ckpt")
    for step in (100, 200, 300):
        upload(tmp_path, step)
    gcs.put(BUCKET, f"ckpt/checkpoints/{JOB}/step-50/model.safetensors", b"abandoned")
    deleted = apply_retention(store, JOB, keep_last=2)
    assert deleted == [50, 100]
    steps = {k.split("/")[3] for k in gcs.buckets[BUCKET]}
    assert steps == {"step-200", "step-300"}
    deletes = [unquote(path.split("?")[0]) for method, path in gcs.requests if method == "DELETE"]
    assert deletes[0].endswith("step-100/MANIFEST.json")  # a half-deleted checkpoint already does not exist


def test_resume_fails_when_the_bucket_cannot_be_read(tmp_path: Path, gcs: GcsFake) -> None:
    from click.testing import CliRunner

    from pyctl.agent.cli import main

    args = ["resume", "--job", JOB, "--bucket", "gs://no-such-bucket", "--to", str(tmp_path / "restored")]
    result = CliRunner().invoke(main, [*args, "--env-file", str(tmp_path / "resume.env")])
    # The training unit must not start from scratch: exit 1 and no RESUME_FROM file at all.
    assert result.exit_code == 1, result.output
    assert "error: gs://no-such-bucket:" in result.output
    assert not (tmp_path / "resume.env").exists()

"""Checkpoints in moto S3: multipart upload, manifest last, verify on download, retention, `resume`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.agent.cli import main
from pyctl.clouds.aws.storage import S3Store
from pyctl.core.checkpoint_store import (
    ChecksumError,
    apply_retention,
    complete_checkpoints,
    download_checkpoint,
    newest_complete,
    upload_checkpoint,
)

from .conftest import AwsWorld

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
MB = 1024 * 1024


def local_step(root: Path, step: int, payload: bytes = b"w") -> Path:
    path = root / f"step-{step}"
    (path / "opt").mkdir(parents=True)
    (path / "state.json").write_text(f'{{"step": {step}}}')
    (path / "opt" / "adam.bin").write_bytes(payload * 64)
    (path / "COMPLETE").write_text("")
    return path


def test_large_files_go_up_in_parts_and_come_back_verified(aws: AwsWorld, tmp_path: Path) -> None:
    step_dir = local_step(tmp_path / "ckpt", 300)
    (step_dir / "model.safetensors").write_bytes(os.urandom(11 * MB))
    store = S3Store("ckpt", "p", part_size=5 * MB)
    upload_checkpoint(store, "llm", 300, step_dir, now=NOW)

    head = aws.s3.head_object(Bucket="ckpt", Key="p/checkpoints/llm/step-300/model.safetensors")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    found = newest_complete(store, "llm")
    assert found is not None and found.step == 300 and found.time == NOW
    assert [e.path for e in found.files.files] == ["model.safetensors", "opt/adam.bin", "state.json"]

    restored = download_checkpoint(store, found, tmp_path / "restore")
    assert restored == tmp_path / "restore" / "step-300"
    assert (restored / "model.safetensors").read_bytes() == (step_dir / "model.safetensors").read_bytes()
    assert (restored / "COMPLETE").exists()
    assert not (restored / "MANIFEST.json").exists()


def test_a_corrupt_file_is_refused_and_resume_falls_back(aws: AwsWorld, tmp_path: Path) -> None:
    for step in (10, 20):
        upload_checkpoint(S3Store("ckpt"), "llm", step, local_step(tmp_path / "ckpt", step), now=NOW)
    # Same size, different bytes: only the sha256 can tell.
    aws.s3.put_object(Bucket="ckpt", Key="checkpoints/llm/step-20/opt/adam.bin", Body=b"x" * 64)

    newest = newest_complete(S3Store("ckpt"), "llm")
    assert newest is not None and newest.step == 20
    with pytest.raises(ChecksumError, match="adam.bin: sha256 mismatch"):
        download_checkpoint(S3Store("ckpt"), newest, tmp_path / "restore")
    assert not (tmp_path / "restore" / "step-20").exists()

    result = CliRunner().invoke(
        main, ["resume", "--job", "llm", "--bucket", "ckpt", "--to", str(tmp_path / "restore")]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "restore" / "step-10")


def test_a_manifest_whose_files_are_missing_does_not_exist(aws: AwsWorld, tmp_path: Path) -> None:
    upload_checkpoint(S3Store("ckpt"), "llm", 10, local_step(tmp_path / "ckpt", 10), now=NOW)
    upload_checkpoint(S3Store("ckpt"), "llm", 20, local_step(tmp_path / "ckpt", 20), now=NOW)
    aws.s3.delete_object(Bucket="ckpt", Key="checkpoints/llm/step-20/state.json")
    aws.s3.put_object(Bucket="ckpt", Key="checkpoints/llm/step-30/MANIFEST.json", Body=b"{not json")
    assert [m.step for m in complete_checkpoints(S3Store("ckpt"), "llm")] == [10]


def test_retention_keeps_the_last_k_and_removes_abandoned_uploads(aws: AwsWorld, tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        upload_checkpoint(S3Store("ckpt"), "llm", step, local_step(tmp_path / "ckpt", step), now=NOW)
    aws.s3.put_object(Bucket="ckpt", Key="checkpoints/llm/step-15/state.json", Body=b"{}")  # killed upload
    aws.s3.put_object(Bucket="ckpt", Key="checkpoints/llm/step-45/state.json", Body=b"{}")  # in flight
    assert apply_retention(S3Store("ckpt"), "llm", keep_last=2) == [10, 15, 20]
    left = {o["Key"].split("/")[2] for o in aws.s3.list_objects_v2(Bucket="ckpt")["Contents"]}
    assert left == {"step-30", "step-40", "step-45"}


def test_resume_with_nothing_stored_prints_nothing_and_clears_the_env_file(
    aws: AwsWorld, tmp_path: Path
) -> None:
    env_file = tmp_path / "resume.env"
    env_file.write_text("RESUME_FROM=/stale/step-1\n")
    result = CliRunner().invoke(
        main,
        [
            "resume",
            "--job",
            "llm",
            "--bucket",
            "ckpt",
            "--to",
            str(tmp_path / "r"),
            "--env-file",
            str(env_file),
        ],
    )
    assert result.exit_code == 0
    assert result.stdout == ""
    assert env_file.read_text() == ""


def test_resume_reuses_a_verified_local_copy(aws: AwsWorld, tmp_path: Path) -> None:
    upload_checkpoint(S3Store("ckpt"), "llm", 10, local_step(tmp_path / "ckpt", 10), now=NOW)
    manifest = newest_complete(S3Store("ckpt"), "llm")
    assert manifest is not None
    first = download_checkpoint(S3Store("ckpt"), manifest, tmp_path / "r")
    marker = first / "local-note"
    marker.write_text("kept")  # would vanish if the directory were downloaded again
    assert download_checkpoint(S3Store("ckpt"), manifest, tmp_path / "r") == first
    assert marker.exists()
    (first / "state.json").write_text('{"step": 99}')  # tampered locally: downloaded again
    download_checkpoint(S3Store("ckpt"), manifest, tmp_path / "r")
    assert not marker.exists()
    assert (first / "state.json").read_text() == '{"step": 10}'


def test_bad_job_names_are_a_user_error(aws: AwsWorld, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["resume", "--job", "../x", "--bucket", "ckpt", "--to", str(tmp_path)])
    assert result.exit_code == 2
    assert "job name '../x'" in result.output


def test_resume_fails_loudly_when_the_bucket_is_unreachable(aws: AwsWorld, tmp_path: Path) -> None:
    env_file = tmp_path / "resume.env"
    result = CliRunner().invoke(
        main,
        [
            "resume",
            "--job",
            "llm",
            "--bucket",
            "no-such-bucket",
            "--to",
            str(tmp_path),
            "--env-file",
            str(env_file),
        ],
    )
    assert result.exit_code == 1
    assert "s3://no-such-bucket" in result.stderr and "NoSuchBucket" in result.stderr
    assert not env_file.exists()  # the training unit does not start as if there were nothing to resume

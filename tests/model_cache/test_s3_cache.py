"""Model cache on S3 (moto server over HTTP): push, fetch, integrity, resume, refusals, missing models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl import model_cache
from pyctl.agent.fetch_model import fetch_model
from pyctl.clouds.aws import client
from pyctl.clouds.aws.storage import S3Store
from pyctl.commands.model import model
from pyctl.core.manifest import Manifest
from pyctl.errors import PyctlError

from .conftest import BUCKET, MODEL_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]
PART = ["--part-size-mib", "1", "--concurrency", "4"]


def push(model_dir: Path, version: str = "v1", name: str = "llama", **kwargs: object) -> Manifest:
    store = S3Store(BUCKET, concurrency=4, part_size=5 * 1024 * 1024)
    return model_cache.push_model(
        store, model_dir, name, version, allow_pickle=False, log=lambda _: None, **kwargs
    )


def fetch(dest: Path, *args: str) -> object:
    return CliRunner().invoke(fetch_model, ["llama", "--to", str(dest), "--bucket", BUCKET, *PART, *args])


def same_tree(a: Path, b: Path) -> None:
    for rel in MODEL_FILES:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_push_then_fetch_round_trip(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    (model_dir / ".cache/huggingface").mkdir(parents=True)
    (model_dir / ".cache/huggingface/download.lock").write_bytes(b"")  # hidden: not part of the model
    (model_dir / ".gitattributes").write_bytes(b"*.safetensors filter=lfs")
    manifest = push(model_dir)
    keys = {o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"models/llama/v1/{rel}" for rel in [*MODEL_FILES, "manifest.json"]}
    dest = tmp_path / "out"
    result = fetch(dest)
    assert result.exit_code == 0, result.output
    same_tree(model_dir, dest)
    assert Manifest.from_json((dest / model_cache.LOCAL_MANIFEST_NAME).read_text()) == manifest
    assert not list(dest.rglob("*.pyctl-part"))
    # Not a terminal: one log line per file, no progress bar.
    for rel in MODEL_FILES:
        assert f"fetch-model: {rel}: verified ({MODEL_FILES[rel]} bytes)" in result.output
    assert "5 fetched, 0 already verified" in result.output


def test_push_command_uses_the_env_cache_bucket(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    shutil.copy(
        REPO_ROOT / "infra/envs/dev/env.yaml", env_dir / "env.yaml"
    )  # model_cache.aws.bucket = BUCKET
    result = CliRunner().invoke(model, ["push", str(model_dir), "--name", "llama", "--env", str(env_dir)])
    assert result.exit_code == 0, result.output
    version = result.stdout.strip().splitlines()[-1]
    body = client("s3").get_object(Bucket=BUCKET, Key=f"models/llama/{version}/manifest.json")["Body"].read()
    assert Manifest.from_json(body).attributes["version"] == version
    again = CliRunner().invoke(
        model, ["push", str(model_dir), "--name", "llama", "--env", str(env_dir), "--version", version]
    )
    assert isinstance(again.exception, PyctlError)
    assert "already exists" in str(again.exception)


def test_fetch_picks_the_latest_complete_version(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir, "old")
    (model_dir / "config.json").write_bytes(b'{"new": true}')
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    push(model_dir, "new")
    # An incomplete upload (files, no manifest) is not a version.
    client("s3").put_object(Bucket=BUCKET, Key="models/llama/zzz-partial/config.json", Body=b"{}")
    result = fetch(tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "version new" in result.output
    assert (tmp_path / "out/config.json").read_bytes() == b'{"new": true}'


def test_pickle_is_refused_unless_allowed(s3_bucket: str, model_dir: Path) -> None:
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(PyctlError, match=r"refusing pickle-capable file\(s\) pytorch_model.bin"):
        push(model_dir)
    assert "Contents" not in client("s3").list_objects_v2(Bucket=BUCKET)  # nothing uploaded
    lines: list[str] = []
    store = S3Store(BUCKET)
    manifest = model_cache.push_model(store, model_dir, "llama", "v1", allow_pickle=True, log=lines.append)
    assert manifest.entry("pytorch_model.bin") is not None
    assert "warning: pytorch_model.bin is a pickle-capable format: loading it runs arbitrary code" in lines


def test_missing_model_is_named_in_one_line(s3_bucket: str, tmp_path: Path) -> None:
    result = fetch(tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"pyctl-agent fetch-model: error: model 'llama' not found: no complete version under s3://{BUCKET}/models/llama/"
    )
    result = fetch(tmp_path / "out", "--version", "v9")
    assert result.exit_code == 2
    assert "model 'llama' version 'v9' not found: no manifest at" in result.output


def test_missing_bucket_is_named(moto_server: object, tmp_path: Path) -> None:
    result = fetch(tmp_path / "out")
    assert result.exit_code == 1  # a failed cloud call (README), not invalid input
    assert f"bucket s3://{BUCKET} does not exist" in result.output


def test_corrupted_object_is_refetched_once_then_reported(
    s3_bucket: str, model_dir: Path, tmp_path: Path
) -> None:
    push(model_dir)
    bad = bytearray((model_dir / "model-00002-of-00002.safetensors").read_bytes())
    bad[1000] ^= 0x01
    client("s3").put_object(
        Bucket=BUCKET, Key="models/llama/v1/model-00002-of-00002.safetensors", Body=bytes(bad)
    )
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / model_cache.LOCAL_MANIFEST_NAME).write_text("{}")  # left by an earlier, complete fetch
    result = fetch(dest)
    assert result.exit_code == model_cache.EXIT_INTEGRITY
    assert "model-00002-of-00002.safetensors: sha256 mismatch" in result.output
    assert "refetching" in result.output and "giving up" in result.output
    assert "1 file(s) failed verification: model-00002-of-00002.safetensors: sha256 mismatch" in result.output
    # The damaged file never lands under its real name; the good ones do; no completion marker.
    assert not (dest / "model-00002-of-00002.safetensors").exists()
    assert not list(dest.rglob("*.pyctl-part"))
    assert (dest / "config.json").read_bytes() == (model_dir / "config.json").read_bytes()
    assert not (dest / model_cache.LOCAL_MANIFEST_NAME).exists()


def test_corruption_in_transit_is_repaired(s3_bucket: str, model_dir: Path, tmp_path: Path, s3_proxy) -> None:
    push(model_dir)
    s3_proxy.corrupt["model-00001-of-00002.safetensors"] = 1  # one damaged response, then clean ones
    s3_proxy.corrupt["config.json"] = 1  # one range: hashed while it streams
    dest = tmp_path / "out"
    result = fetch(dest)
    assert result.exit_code == 0, result.output
    same_tree(model_dir, dest)
    # 4 ranges of 1 MiB, plus the damaged file fetched again.
    assert s3_proxy.gets("model-00001-of-00002.safetensors") == 8
    assert s3_proxy.gets("config.json") == 2
    assert "model-00001-of-00002.safetensors: sha256 mismatch" in result.output
    assert "config.json: sha256 mismatch" in result.output


def test_a_dropped_connection_refetches_only_that_range(
    s3_bucket: str, model_dir: Path, tmp_path: Path, s3_proxy
) -> None:
    push(model_dir)
    s3_proxy.cut["model-00001-of-00002.safetensors"] = 1
    result = fetch(tmp_path / "out")
    assert result.exit_code == 0, result.output
    same_tree(model_dir, tmp_path / "out")
    assert s3_proxy.gets("model-00001-of-00002.safetensors") == 4 + 1  # 4 ranges, one of them twice
    assert "refetching" not in result.output


def test_a_range_that_keeps_failing_fails_its_file_then_the_file_is_refetched(
    s3_bucket: str, model_dir: Path, tmp_path: Path, s3_proxy
) -> None:
    push(model_dir)
    s3_proxy.cut["tokenizer/tokenizer.json"] = 3  # every attempt of its one range
    result = fetch(tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "tokenizer/tokenizer.json: download failed" in result.output and "refetching" in result.output
    assert s3_proxy.gets("tokenizer/tokenizer.json") == 3 + 1
    same_tree(model_dir, tmp_path / "out")


def test_manifest_that_does_not_match_the_objects(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    manifest = push(model_dir)
    document = json.loads(manifest.to_json())
    for entry in document["files"]:
        if entry["path"] == "config.json":
            entry["size"] += 10  # the object is shorter than the manifest says
    client("s3").put_object(Bucket=BUCKET, Key="models/llama/v1/manifest.json", Body=json.dumps(document))
    result = fetch(tmp_path / "out")
    assert result.exit_code == model_cache.EXIT_INTEGRITY
    assert "config.json: download failed: object is 700 bytes, the manifest says 710" in result.output
    assert "fetch-model: config.json: verified" not in result.output


def test_manifest_of_another_model_is_refused(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    manifest = push(model_dir, name="other")
    client("s3").put_object(Bucket=BUCKET, Key="models/llama/v1/manifest.json", Body=manifest.to_json())
    result = fetch(tmp_path / "out")
    assert result.exit_code == 2
    assert "names 'other' version 'v1': the bucket holds a mismatched manifest" in result.output


def test_unsafe_manifest_path_is_refused(s3_bucket: str, tmp_path: Path) -> None:
    document = {
        "format": 1,
        "name": "llama",
        "version": "v1",
        "files": [{"path": "../escape", "size": 1, "sha256": "0" * 64}],
    }
    client("s3").put_object(Bucket=BUCKET, Key="models/llama/v1/manifest.json", Body=json.dumps(document))
    result = fetch(tmp_path / "out")
    assert result.exit_code == 2
    assert "'../escape' has an empty, '.' or '..' segment" in result.output
    assert not (tmp_path / "escape").exists()


def test_resume_after_a_killed_fetch_fetches_only_missing_files(
    s3_bucket: str, model_dir: Path, tmp_path: Path, s3_proxy
) -> None:
    push(model_dir)
    s3_proxy.stall.add("model-00001-of-00002.safetensors")  # hangs: the process is killed while on it
    dest = tmp_path / "out"
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_proxy.url}
    code = "from pyctl.agent.fetch_model import fetch_model; fetch_model()"
    args = [
        "llama",
        "--to",
        str(dest),
        "--bucket",
        BUCKET,
        "--part-size-mib",
        "1",
        "--concurrency",
        "6",
    ]  # 4 ranges stall, 2 go on
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stderr=subprocess.PIPE, text=True)
    others = [rel for rel in MODEL_FILES if not rel.startswith("model-00001")]
    deadline = time.monotonic() + 30
    while not all((dest / rel).exists() for rel in others):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the other files never arrived"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (dest / "model-00001-of-00002.safetensors").exists()
    assert (dest / ".model-00001-of-00002.safetensors.pyctl-part").exists()  # the interrupted download

    s3_proxy.stall.clear()
    s3_proxy.release.set()
    s3_proxy.requests.clear()
    result = fetch(dest)
    assert result.exit_code == 0, result.output
    same_tree(model_dir, dest)
    assert s3_proxy.gets("model-00001-of-00002.safetensors") == 4
    for rel in others:
        assert s3_proxy.gets(rel) == 0, rel
        assert f"{rel}: already present and verified" in result.output
    assert "1 fetched, 4 already verified" in result.output
    assert not list(dest.rglob("*.pyctl-part"))


def test_a_locally_damaged_file_is_fetched_again(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir)
    dest = tmp_path / "out"
    assert fetch(dest).exit_code == 0
    with (dest / "config.json").open("r+b") as handle:
        handle.write(b"X")
    result = fetch(dest)
    assert result.exit_code == 0, result.output
    assert "1 fetched, 4 already verified" in result.output
    same_tree(model_dir, dest)


def test_progress_bar_mode_reports_each_file(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    push(model_dir)
    result = fetch(tmp_path / "out", "--progress")
    assert result.exit_code == 0, result.output
    for rel in MODEL_FILES:
        assert f"{rel}: verified" in result.output
    assert "fetch-model: config.json" not in result.output  # the bar replaces the log lines

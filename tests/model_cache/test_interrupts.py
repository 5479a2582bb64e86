"""Ctrl-C and missing credentials, on real processes: `pyctl-agent fetch-model` stops within a second of
SIGINT, exits 130 and leaves nothing unverified under a real name; a store without credentials is one
line naming the bucket, exit 1, no traceback (fetch-model on S3 and GCS, `pyctl model push`, `model list`).
Also the S3 store's in-order sha256 over ranges that land out of order, and a cut range resumed."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyctl import model_cache
from pyctl.clouds.aws.storage import S3Store, _PartialFile
from pyctl.core.manifest import FileEntry, FileState, Manifest, verify_file
from pyctl.core.models import plan_ranges
from pyctl.core.object_store import Transfer

from .conftest import BUCKET, MODEL_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV = REPO_ROOT / "infra/envs/dev/env.yaml"  # model_cache.aws.bucket = BUCKET
AGENT = "from pyctl.agent.cli import main; main()"
PYCTL = "from pyctl.cli import main; main()"


def push(model_dir: Path) -> Manifest:
    store = S3Store(BUCKET, concurrency=4, part_size=5 * 1024 * 1024)
    return model_cache.push_model(store, model_dir, "llama", "v1", allow_pickle=False, log=lambda _: None)


def no_credentials_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with no AWS or Google credentials at all (and no IMDS to ask)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "STORAGE_EMULATOR"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "no-adc.json"),
        CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"),
    )
    return env


def run(code: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_sigint_stops_fetch_model_within_a_second_and_a_rerun_completes(
    s3_bucket: str, model_dir: Path, tmp_path: Path, s3_proxy
) -> None:
    manifest = push(model_dir)
    s3_proxy.stall.add("model-00001-of-00002.safetensors")  # its GETs hang: the fetch is mid-transfer
    dest = tmp_path / "out"
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_proxy.url, "PYTHONPATH": str(REPO_ROOT)}
    args = ["fetch-model", "llama", "--to", str(dest), "--bucket", BUCKET, "--part-size-mib", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", AGENT, *args, "--concurrency", "6"], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not list(dest.glob(".model-00001-of-00002.safetensors.pyctl-part")):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.02)
    time.sleep(0.2)  # the other files are in flight or done
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    took = time.monotonic() - sent
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 130, stderr
    # "Within a second" (CANCEL_GRACE_SECONDS is 0.5 of it); the slack is for a loaded 2-core machine.
    assert took < 1.5, f"took {took:.2f} s to stop"
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    assert stderr.rstrip().endswith(
        "pyctl-agent fetch-model: interrupted: only verified files were kept; run it again to fetch the rest"
    )
    time.sleep(0.3)
    assert not list(dest.rglob("*.pyctl-part")), "a temporary file survived the interrupt"
    assert not (dest / model_cache.LOCAL_MANIFEST_NAME).exists()  # never marked complete
    assert not (dest / "model-00001-of-00002.safetensors").exists()
    for entry in manifest.files:  # whatever is under a real name is complete and verified
        if entry.local_path(dest).exists():
            assert verify_file(dest, entry) is FileState.VERIFIED, entry.path

    s3_proxy.stall.clear()
    s3_proxy.release.set()
    rerun = run(AGENT, args, env)
    assert rerun.returncode == 0, rerun.stderr
    for entry in manifest.files:
        assert verify_file(dest, entry) is FileState.VERIFIED, entry.path
    assert (dest / model_cache.LOCAL_MANIFEST_NAME).exists()


@pytest.mark.parametrize("bucket", [BUCKET, f"gs://{BUCKET}"])
def test_fetch_model_without_credentials_is_one_line_naming_the_bucket(bucket: str, tmp_path: Path) -> None:
    result = run(
        AGENT,
        ["fetch-model", "llama", "--to", str(tmp_path / "out"), "--bucket", bucket],
        no_credentials_env(tmp_path),
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    scheme = "gs" if bucket.startswith("gs://") else "s3"
    assert lines[0].startswith(f"pyctl-agent fetch-model: error: {scheme}://{BUCKET}: no ")
    assert "credentials found" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def dev_env(tmp_path: Path) -> Path:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV, env_dir / "env.yaml")
    return env_dir


@pytest.mark.parametrize("command", ["push", "list"])
def test_model_commands_without_credentials_are_one_line_exit_1(
    command: str, model_dir: Path, tmp_path: Path
) -> None:
    args = ["model", command, "--env", str(dev_env(tmp_path)), "--cloud", "aws"]
    if command == "push":
        args += [str(model_dir), "--name", "llama", "--version", "v1"]
    else:
        args += ["--name", "llama"]
    result = run(PYCTL, args, no_credentials_env(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: s3://{BUCKET}: no AWS credentials found (environment, profile, SSO or instance role)"
    ], result.stderr


def test_fetch_model_cloud_comes_from_pyctl_cloud(tmp_path: Path) -> None:
    """The node's agent.env sets PYCTL_CLOUD=gcp: a bare bucket name is then a GCS bucket."""
    env = {**no_credentials_env(tmp_path), "PYCTL_CLOUD": "gcp"}
    result = run(AGENT, ["fetch-model", "llama", "--to", str(tmp_path / "out"), "--bucket", BUCKET], env)
    assert result.returncode == 1 and f"error: gs://{BUCKET}: no Google credentials" in result.stderr


@pytest.mark.parametrize("seed", range(6))
def test_ranges_landing_in_any_order_give_the_sha256_of_the_file(tmp_path: Path, seed: int) -> None:
    """The in-order hash of `_PartialFile`: ranges written by threads in random order and random chunk
    sizes; the digest must be the file's, without the file being re-read whole afterwards."""
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(1, 3_000_000))
    entry = FileEntry(path="w.safetensors", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    ranges = plan_ranges(len(data), rng.choice([1000, 65_536, 400_000, 5_000_000]))
    reported: list[tuple[BaseException | None, str | None]] = []
    target = _PartialFile(
        Transfer(entry, "k", tmp_path / "w.part"), ranges, lambda _t, e, d: reported.append((e, d))
    )

    def write(byte_range) -> None:
        offset = byte_range.start
        while offset <= byte_range.end:
            n = min(rng.randrange(1, 200_000), byte_range.end + 1 - offset)
            chunk = data[offset : offset + n]
            os.pwrite(target.fd, chunk, offset)
            target.wrote(byte_range, offset, chunk)
            offset += n
            time.sleep(0)
        target.part_finished(None)

    order = rng.sample(ranges, len(ranges))
    threads = [threading.Thread(target=write, args=(r,)) for r in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reported == [(None, entry.sha256)]
    assert (tmp_path / "w.part").read_bytes() == data


def test_a_cut_range_resumes_where_it_stopped(
    s3_bucket: str, model_dir: Path, tmp_path: Path, s3_proxy
) -> None:
    push(model_dir)
    s3_proxy.cut["tokenizer/tokenizer.json"] = 1  # one range (40,000 bytes), cut half-way once
    # 4 KiB reads: the pieces before the cut land (and count) before the connection drops.
    store = S3Store(BUCKET, concurrency=2, part_size=1024 * 1024, read_size=4096)
    dest = tmp_path / "out"
    result = model_cache.fetch_model(store, "llama", "v1", dest, _Quiet())
    assert "tokenizer/tokenizer.json" in result.fetched and not result.refetched
    ranges = [r for m, p, r in s3_proxy.requests if m == "GET" and p.endswith("tokenizer/tokenizer.json")]
    assert ranges[0] == "bytes=0-39999"
    first, _, last = ranges[1].removeprefix("bytes=").partition("-")
    assert 0 < int(first) < 40_000 and last == "39999", ranges  # only the missing tail again
    assert (dest / "tokenizer/tokenizer.json").read_bytes() == (
        model_dir / "tokenizer/tokenizer.json"
    ).read_bytes()
    assert sorted(MODEL_FILES) == sorted(result.fetched)


class _Quiet:
    def begin(self, *args: object) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, *args: object) -> None: ...

    def end(self) -> None: ...


def test_sigint_stops_model_push_before_its_manifest(s3_bucket: str, model_dir: Path, tmp_path: Path) -> None:
    from pyctl.clouds.aws import client

    with (model_dir / "model-00003-of-00003.safetensors").open("wb") as handle:
        handle.truncate(192 * 1024 * 1024)  # 6 multipart parts, sent one at a time below
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = ["model", "push", str(model_dir), "--name", "llama", "--env", str(dev_env(tmp_path))]
    proc = subprocess.Popen(
        [sys.executable, "-c", PYCTL, *argv, "--version", "v1", "--cloud", "aws", "--concurrency", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    while not any(line.startswith("hashing") for line in lines):
        line = proc.stderr.readline()
        assert line, "".join(lines)
        lines.append(line)
    time.sleep(0.5)  # uploading
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    took = time.monotonic() - sent
    stderr = "".join(lines) + proc.stderr.read()
    assert code == 130, stderr
    assert took < 1.5, f"took {took:.2f} s to stop"
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    assert f"pyctl model push: interrupted: no manifest written to s3://{BUCKET}" in stderr
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/llama/v1/").get("Contents", [])
    assert "models/llama/v1/manifest.json" not in {o["Key"] for o in listed}  # the version does not exist

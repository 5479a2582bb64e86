"""`pyctl model push` (refusal before any upload, --exclude, sizes, the env.yaml lines to add) and
`pyctl model list`, on the moto server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from pyctl.cli import PyctlGroup
from pyctl.clouds.aws import client
from pyctl.commands.model import model

from .conftest import BUCKET

DEV = Path(__file__).resolve().parents[2] / "infra/envs/dev/env.yaml"  # model_cache.aws.bucket = BUCKET


def invoke(*args: object):
    return CliRunner().invoke(PyctlGroup(commands={"model": model}), ["model", *map(str, args)])


def dev_env(tmp_path: Path) -> Path:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(DEV, env_dir / "env.yaml")
    return env_dir


def keys() -> set[str]:
    return {o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_a_hugging_face_dir_with_pytorch_bin_is_refused_before_anything_and_names_the_fix(
    s3_bucket, model_dir, tmp_path
):
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    result = invoke("push", model_dir, "--name", "llama", "--env", dev_env(tmp_path))
    assert result.exit_code == 2
    assert "pushing" not in result.output  # refused before a store was opened
    assert (
        "nothing was uploaded; the safetensors are there too: leave the others out with --exclude '*.bin'"
        in result.output
    )
    assert keys() == set()


def test_exclude_pushes_the_safetensors_and_prints_the_env_yaml_lines(s3_bucket, model_dir, tmp_path):
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    env_dir = dev_env(tmp_path)
    result = invoke(
        "push", model_dir, "--name", "llama", "--env", env_dir, "--version", "v1", "--exclude", "*.bin"
    )
    assert result.exit_code == 0, result.output
    assert "models/llama/v1/pytorch_model.bin" not in keys() and "models/llama/v1/manifest.json" in keys()
    assert "uploaded model-00001-of-00002.safetensors (3.15 MB)" in result.stderr
    assert "pushed llama version v1: 5 file(s), 5.28 MB" in result.stderr
    assert result.stdout.splitlines() == ["v1"]
    assert (
        f'To serve it, add to {env_dir / "env.yaml"} under model_cache.models:\n    - name: llama\n      version: "v1"\n'
        in result.stderr
    )
    assert "and on the pool that serves it:  model: llama" in result.stderr


def test_pushing_a_model_env_yaml_already_names_says_which_version_to_change(s3_bucket, model_dir, tmp_path):
    env_dir = dev_env(tmp_path)
    result = invoke("push", model_dir, "--name", "llama-3-8b-instruct", "--env", env_dir, "--version", "v2")
    assert result.exit_code == 0, result.output
    assert 'model_cache.models[0].version: "v2"   (now "2024-07-18")' in result.stderr
    assert "(pools already serving llama-3-8b-instruct: l4-spot)" in result.stderr


def test_model_list_shows_versions_and_fails_on_a_missing_pinned_one(s3_bucket, model_dir, tmp_path):
    env_dir = dev_env(tmp_path)
    missing = invoke("list", "--env", env_dir)
    assert missing.exit_code == 1
    assert (
        "pinned version(s) not in the cache: llama-3-8b-instruct@2024-07-18 in s3://acme-dev-gpu-models"
        in missing.output
    )

    assert (
        invoke(
            "push", model_dir, "--name", "llama-3-8b-instruct", "--env", env_dir, "--version", "2024-07-18"
        ).exit_code
        == 0
    )
    assert invoke("push", model_dir, "--name", "other", "--env", env_dir, "--version", "v9").exit_code == 0
    listed = invoke("list", "--env", env_dir, "--name", "other", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["model"]: r for r in json.loads(listed.stdout)}
    assert rows["llama-3-8b-instruct"]["pinned"] == "2024-07-18"
    assert [v["version"] for v in rows["llama-3-8b-instruct"]["versions"]] == ["2024-07-18"]
    assert rows["other"]["pinned"] is None and [v["version"] for v in rows["other"]["versions"]] == ["v9"]
    table = invoke("list", "--env", env_dir)
    assert table.exit_code == 0 and "2024-07-18" in table.output and "pinned" in table.output


def test_push_in_a_terminal_shows_a_progress_bar(s3_bucket, model_dir, tmp_path):
    import os
    import pty
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pyctl"), "model", "push", str(model_dir), "--name", "llama",
         "--env", str(dev_env(tmp_path)), "--version", "v1"],
        stdout=subprocess.PIPE, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(controller)
    shown = b"".join(chunks).decode()
    assert "llama v1" in shown and "MB" in shown and "━" in shown  # rich's bar and byte columns
    assert "uploaded model-00001" not in shown  # the bar replaces the per-file lines
    assert proc.stdout.read().decode().strip() == "v1"

"""Rendering: the right variables, byte-identical on re-run, drift detected by --check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyctl.cli import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prod_copy(tmp_path: Path) -> Path:
    env_dir = tmp_path / "prod"
    env_dir.mkdir()
    shutil.copy(REPO / "infra" / "envs" / "prod" / "env.yaml", env_dir / "env.yaml")
    return env_dir


def test_render_writes_tfvars_and_backend(prod_copy: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--env", str(prod_copy)])
    assert result.exit_code == 0, result.output
    tfvars = json.loads((prod_copy / "terraform.tfvars.json").read_text())
    baseline = tfvars["aws_pools"]["h100-baseline"]
    assert baseline["capacity"] == "reserved"
    assert baseline["gpus_per_instance"] == 8
    assert baseline["reservation"] == {
        "capacity_block_offering_id": None,
        "end_date": None,
        "instance_count": 2,
        "match": "capacity-reservations-only",
    }
    assert tfvars["gcp_pools"]["a3-overflow"]["termination_action"] == "STOP"
    assert tfvars["gcp_pools"]["a3-overflow"]["accelerator_type"] is None  # a3 carries its GPUs
    assert tfvars["tags"] == {
        "CostCenter": "ml-inference",
        "Env": "prod",
        "ManagedBy": "pyctl",
        "Team": "inference",
    }
    backend = (prod_copy / "backend.hcl").read_text()
    assert 'bucket       = "acme-tfstate-prod"' in backend
    assert "use_lockfile = true" in backend


def test_render_is_byte_identical_on_rerun(prod_copy: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["render", "--env", str(prod_copy)])
    first = _tree(prod_copy)
    result = runner.invoke(cli, ["render", "--env", str(prod_copy)])
    assert "unchanged" in result.output and "wrote" not in result.output
    assert _tree(prod_copy) == first


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_function_packages_are_built_and_named_with_their_hash(prod_copy: Path) -> None:
    import base64
    import hashlib
    import zipfile

    assert CliRunner().invoke(cli, ["render", "--env", str(prod_copy)]).exit_code == 0
    packages = json.loads((prod_copy / "functions.auto.tfvars.json").read_text())["function_packages"]
    watchdog = packages["gpu_watchdog"]
    zip_path = prod_copy / watchdog["path"]
    assert watchdog["path"] == ".pyctl-build/gpu_watchdog.zip"  # relative: the render is machine-independent
    assert (
        watchdog["base64sha256"] == base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    )
    names = zipfile.ZipFile(zip_path).namelist()
    assert "pyctl/functions/gpu_watchdog_aws.py" in names and "pyctl/core/idle.py" in names
    assert not any(n.startswith(("pyctl/cli", "click/", "pyctl/render")) for n in names)


def test_check_ignores_function_artifacts_but_plans_hash_them(prod_copy: Path) -> None:
    from pyctl.render import render_env
    from pyctl.spec import load_env

    runner = CliRunner()
    runner.invoke(cli, ["render", "--env", str(prod_copy)])
    (prod_copy / "functions.auto.tfvars.json").unlink()
    assert runner.invoke(cli, ["render", "--env", str(prod_copy), "--check"]).exit_code == 0
    paths = render_env(load_env(str(prod_copy))).paths()
    assert prod_copy / "functions.auto.tfvars.json" in paths  # a plan's inputs include the packages


def test_render_is_identical_across_processes(prod_copy: Path) -> None:
    # Hash randomisation differs per process: set/dict ordering must not leak into the output.
    outputs = []
    for seed in ("1", "2"):
        code = (
            "from pyctl.spec import load_env; from pyctl.render import render_env; import sys; "
            f"sys.stdout.buffer.write(render_env(load_env({str(prod_copy)!r})).files['terraform.tfvars.json'])"
        )
        outputs.append(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                check=True,
                # The bundle wheels' cache (prefetched): a render here never downloads.
                env={
                    "PYTHONHASHSEED": seed,
                    "PATH": "/usr/bin:/bin",
                    "PYCTL_CACHE_DIR": os.environ["PYCTL_CACHE_DIR"],
                },
            ).stdout
        )
    assert outputs[0] == outputs[1]


def test_check_detects_drift_and_names_the_file(prod_copy: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["render", "--env", str(prod_copy)])
    assert runner.invoke(cli, ["render", "--env", str(prod_copy), "--check"]).exit_code == 0

    env_yaml = prod_copy / "env.yaml"
    env_yaml.write_text(env_yaml.read_text().replace("max: 6", "max: 8"))
    before = (prod_copy / "terraform.tfvars.json").read_bytes()
    result = runner.invoke(cli, ["render", "--env", str(prod_copy), "--check"])
    assert result.exit_code == 1
    assert f"{prod_copy / 'terraform.tfvars.json'}: differs from env.yaml" in result.stderr
    assert "backend.hcl" not in result.stderr
    assert (prod_copy / "terraform.tfvars.json").read_bytes() == before  # --check writes nothing


def test_check_reports_missing_files(prod_copy: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--env", str(prod_copy), "--check"])
    assert result.exit_code == 1
    assert "backend.hcl: missing" in result.stderr
    assert "terraform.tfvars.json: missing" in result.stderr


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_committed_rendered_files_are_current(env: str) -> None:
    result = CliRunner().invoke(cli, ["render", "--env", str(REPO / "infra" / "envs" / env), "--check"])
    assert result.exit_code == 0, result.stderr


def test_gcs_backend_renders_bucket_and_prefix(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((REPO / "infra" / "envs" / "staging" / "env.yaml").read_text())
    doc["backend"] = {"gcs": {"bucket": "acme-tfstate-gcs", "prefix": "gpu-platform/staging"}}
    env_dir = tmp_path / "staging"
    env_dir.mkdir()
    (env_dir / "env.yaml").write_text(yaml.safe_dump(doc))
    assert CliRunner().invoke(cli, ["render", "--env", str(env_dir)]).exit_code == 0
    backend = (env_dir / "backend.hcl").read_text()
    assert 'bucket = "acme-tfstate-gcs"' in backend
    assert 'prefix = "gpu-platform/staging"' in backend
    assert "use_lockfile" not in backend


def test_watchdog_gets_hourly_prices_with_the_envs_discount(prod_copy: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["render", "--env", str(prod_copy)]).exit_code == 0
    discounted = json.loads((prod_copy / "terraform.tfvars.json").read_text())["watchdog"]["hourly_prices"]

    env_yaml = prod_copy / "env.yaml"
    env_yaml.write_text(env_yaml.read_text().replace("discount_percent: 8", "discount_percent: 0"))
    assert runner.invoke(cli, ["render", "--env", str(prod_copy)]).exit_code == 0
    listed = json.loads((prod_copy / "terraform.tfvars.json").read_text())["watchdog"]["hourly_prices"]

    assert discounted["p5.48xlarge"] == round(listed["p5.48xlarge"] * 0.92, 4)
    assert (
        discounted["p5.48xlarge:spot"] == listed["p5.48xlarge:spot"]
    )  # a negotiated discount is not a spot one
    assert "a3-highgpu-8g" in listed and "a3-highgpu-8g:spot" in listed  # the GCP watchdog prices its VMs too


def test_agent_bundles_are_built_per_cloud_and_named_with_their_hash(prod_copy: Path) -> None:
    import hashlib
    import tarfile

    from pyctl.node_bundle import build_bundle

    assert CliRunner().invoke(cli, ["render", "--env", str(prod_copy)]).exit_code == 0
    variables = json.loads((prod_copy / "agent_bundles.auto.tfvars.json").read_text())
    assert sorted(variables) == ["aws_agent_bundle", "gcp_agent_bundle"]  # prod uses both clouds
    for cloud in ("aws", "gcp"):
        entry = variables[f"{cloud}_agent_bundle"]
        assert entry["path"] == f".pyctl-build/agent-{cloud}.tar.gz"  # relative: machine-independent
        data = (prod_copy / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        # The same bytes as the builder's own (what another tool or a node checks against).
        assert build_bundle(cloud, prod_copy / "again", offline=True).sha256 == entry["sha256"]
        with tarfile.open(prod_copy / entry["path"]) as archive:
            manifest = json.loads(archive.extractfile("BUNDLE.json").read())
        assert manifest["cloud"] == cloud and manifest["distribution"] == "pyctl-gpu-node-agent"
    # --check compares committed files only: the bundles are build artifacts, rebuilt by every render.
    (prod_copy / "agent_bundles.auto.tfvars.json").unlink()
    assert CliRunner().invoke(cli, ["render", "--env", str(prod_copy), "--check"]).exit_code == 0


def test_an_aws_only_env_gets_only_the_aws_bundle(tmp_path: Path) -> None:
    env_dir = tmp_path / "dev"
    env_dir.mkdir()
    shutil.copy(REPO / "infra" / "envs" / "dev" / "env.yaml", env_dir / "env.yaml")
    assert CliRunner().invoke(cli, ["render", "--env", str(env_dir)]).exit_code == 0
    variables = json.loads((env_dir / "agent_bundles.auto.tfvars.json").read_text())
    assert list(variables) == ["aws_agent_bundle"]
    assert not (env_dir / ".pyctl-build" / "agent-gcp.tar.gz").exists()

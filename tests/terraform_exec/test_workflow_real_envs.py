"""The pyctl workflow on the real envs: render, init with the S3 backend (moto, native locking), plan,
summary, gates, apply of the reviewed plan, on real Terraform core with the stand-in providers. The plan
summary, cost change and safety gates are checked here on the real plan JSON of each env."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from click.testing import CliRunner, Result
from fakes.tfprovider.harness import copy_infra

from pyctl.cli import command
from pyctl.errors import PyctlError

from .conftest import INFRA

pytestmark = pytest.mark.slow


def _pyctl(name: str, *args: object, input: str | None = None) -> Result:
    return CliRunner().invoke(command(name), [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def envs(tmp_path: Path, standin, moto_server, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of infra/; each env's state bucket exists on moto."""
    copy_infra(INFRA, tmp_path / "infra")
    for name, value in standin.environ({}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PYCTL_TERRAFORM", str(Path(sys.executable).parent / "pyctl-terraform"))
    for backend in (tmp_path / "infra" / "envs").glob("*/backend.hcl"):
        settings = dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', backend.read_text(), re.M))
        boto3.client("s3", region_name=settings["region"]).create_bucket(
            Bucket=settings["bucket"],
            **(
                {"CreateBucketConfiguration": {"LocationConstraint": settings["region"]}}
                if settings["region"] != "us-east-1"
                else {}
            ),
        )
    return tmp_path / "infra" / "envs"


def test_up_dev_applies_then_converges(envs: Path) -> None:
    dev = envs / "dev"
    first = _pyctl("up", "--env", dev, "--auto-approve")
    assert first.exit_code == 0, first.output
    assert re.search(r"Plan: \d+ to create, 0 to update, 0 to replace, 0 to delete\.", first.stdout)
    assert "l4 GPUs" in first.stdout

    capacity = json.loads(_pyctl("output", "--env", dev, "gpu_capacity").stdout)
    assert capacity, "the applied env reports no GPU capacity"

    again = _pyctl("up", "--env", dev, "--auto-approve")
    assert again.exit_code == 0, again.output
    assert "No changes. Nothing to apply." in again.stdout


def test_prod_reviewed_plan_applies_and_destroy_is_gated(envs: Path, tmp_path: Path) -> None:
    prod = envs / "prod"
    plan_file = tmp_path / "prod.tfplan"
    planned = _pyctl("plan", "--env", prod, "--out", plan_file, "--summary-md", tmp_path / "prod.md")
    assert planned.exit_code == 0, planned.output

    spec = yaml.safe_load((prod / "env.yaml").read_text())
    baseline = next(p for p in spec["pools"] if p["name"] == "h100-baseline")
    gpus = baseline["desired"] * 8
    assert f"+{gpus} h100 GPUs (+{baseline['desired']} x p5.48xlarge, reserved)" in planned.stdout
    markdown = (tmp_path / "prod.md").read_text()
    assert "h100-baseline" in markdown and "$" in markdown  # the monthly cost change per pool
    # the env's expected month and its worst case: the spot burst pool at its max of 6 x p5.48xlarge
    burst = next(p for p in spec["pools"] if p["name"] == "h100-spot-burst")
    assert "Monthly cost: expected" in planned.stdout
    assert re.search(
        rf"h100-spot-burst: expected .*, worst \$[0-9,]+ at {burst['max']} x p5\.48xlarge", planned.stdout
    )
    assert "worst case" in markdown

    manifest = json.loads((tmp_path / "prod.tfplan.manifest.json").read_text())
    assert manifest["env"] == "prod"
    assert "terraform.tfvars.json" in manifest["inputs"]

    applied = _pyctl("apply", "--env", prod, "--plan", plan_file)
    assert applied.exit_code == 0, applied.output

    # A protected env: destroying reserved capacity and the model buckets needs --allow-destroy.
    with pytest.raises(PyctlError, match="protected.*--allow-destroy") as refused:
        _pyctl("destroy", "--env", prod, "--auto-approve")
    assert "aws_ec2_capacity_reservation" in str(refused.value)
    assert (
        json.loads(_pyctl("output", "--env", prod, "gpu_capacity").stdout)["h100-baseline"]["instances"] == 2
    )


def test_staging_plan_summary_from_the_real_plan(envs: Path, tmp_path: Path) -> None:
    staging = envs / "staging"
    planned = _pyctl(
        "plan", "--env", staging, "--out", tmp_path / "s.tfplan", "--summary-md", tmp_path / "s.md"
    )
    assert planned.exit_code == 0, planned.output
    spec = yaml.safe_load((staging / "env.yaml").read_text())
    markdown = (tmp_path / "s.md").read_text()
    for pool in spec["pools"]:
        assert pool["name"] in markdown, f"pool {pool['name']} missing from the summary"
    assert len(markdown) < 65536

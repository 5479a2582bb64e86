"""The stand-in provider itself: its value encoding, the go-plugin handshake Terraform performs when it
starts a provider from a filesystem mirror, and the checks a real provider makes that core does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgpack
import pytest
from fakes.tfprovider import cty
from fakes.tfprovider.harness import SERVER, build_mirror, write_cli_config

from .conftest import INFRA, TERRAFORM

OBJECT = [
    "object",
    {
        "name": "string",
        "count": "number",
        "on": "bool",
        "tags": ["map", "string"],
        "ids": ["set", "string"],
        "rules": ["list", ["object", {"port": "number", "cidr": "string"}]],
        "extra": "dynamic",
    },
]


def test_values_round_trip_with_unknowns_and_dynamic() -> None:
    refined = cty.Unknown(msgpack.ExtType(12, b"\x81\x01\xc3"))  # an unknown known to be non-null
    value = {
        "name": "pool",
        "count": 2**70,  # beyond int64: cty sends it as a string
        "on": True,
        "tags": {"Env": "dev"},
        "ids": ["sg-1", "sg-2"],
        "rules": [{"port": 443, "cidr": cty.UNKNOWN}, {"port": 1.5, "cidr": None}],
        "extra": cty.Dyn(["list", "number"], [1, 2]),
    }
    decoded = cty.decode(cty.encode(value, OBJECT), OBJECT)
    assert decoded["count"] == Decimal(2**70)
    assert decoded["rules"][0]["cidr"] is not None and cty.is_unknown(decoded["rules"][0]["cidr"])
    assert decoded["extra"] == cty.Dyn(["list", "number"], [1, 2])
    assert cty.encode(decoded, OBJECT) == cty.encode(value, OBJECT)
    # a refined unknown goes back to Terraform byte for byte
    assert cty.decode(cty.encode(refined, "string"), "string") == refined
    assert cty.encode(None, OBJECT) == b"\xc0"


def test_wrong_value_type_is_refused() -> None:
    with pytest.raises(TypeError):
        cty.encode({"name": 3}, ["object", {"name": "string"}])


def test_server_refuses_to_run_outside_terraform() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_PLUGIN_MAGIC_COOKIE"}
    proc = subprocess.run(
        [sys.executable, str(SERVER), "--provider", "aws"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "meant to be executed by Terraform" in proc.stderr


ROOT = """
terraform {
  required_providers {
    aws    = { source = "hashicorp/aws", version = "~> 6.69" }
    google = { source = "hashicorp/google", version = ">= 8.0" }
  }
}
provider "aws" {
  region              = "eu-west-1"
  allowed_account_ids = ["111122223333"]
  default_tags {
    tags = { Env = "standin" }
  }
}
provider "google" {
  project = "standin-test"
  region  = "europe-west4"
}
resource "aws_sqs_queue" "q" {
  name = "jobs"
  tags = { Team = "ml" }
}
resource "google_storage_bucket" "b" {
  name     = "standin-models"
  location = "EU"
}
output "queue" { value = [aws_sqs_queue.q.arn, aws_sqs_queue.q.url, aws_sqs_queue.q.tags_all] }
output "bucket" { value = google_storage_bucket.b.url }
"""


@pytest.mark.slow
def test_terraform_installs_and_starts_the_stand_in_from_a_mirror(tmp_path: Path) -> None:
    """No reattach: `terraform init` installs the stand-ins from the mirror, Terraform launches them
    (magic cookie, protocol 6, AutoMTLS server certificate) for plan and apply."""
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "main.tf").write_text(ROOT)
    config = write_cli_config(tmp_path / "rc", build_mirror(tmp_path / "mirror"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(TF_CLI_CONFIG_FILE=str(config), TF_DATA_DIR=str(tmp_path / "data"), TF_IN_AUTOMATION="1")

    def tf(*args: str) -> str:
        proc = subprocess.run(
            [str(TERRAFORM), *args],
            cwd=tmp_path / "root",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    tf("init", "-input=false", "-no-color")
    lock = (tmp_path / "root" / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock and 'version     = "6.69.1"' in lock
    assert "zh:" not in lock  # only the stand-in's local hash: such a lock file must never be committed
    tf("apply", "-input=false", "-auto-approve", "-no-color")
    outputs = json.loads(tf("output", "-json"))
    arn, url, tags_all = outputs["queue"]["value"]
    assert arn == "arn:aws:sqs:eu-west-1:111122223333:jobs"
    assert url == "https://sqs.eu-west-1.amazonaws.com/111122223333/jobs"
    assert tags_all == {
        "Env": "standin",
        "Team": "ml",
    }  # default_tags merged at plan time, as the provider does
    assert outputs["bucket"]["value"] == "gs://standin-models"
    assert "No changes." in tf("plan", "-input=false", "-no-color")


def test_no_committed_lock_file_comes_from_a_stand_in() -> None:
    """A lock file written against the stand-ins has one local `h1:` hash and no registry `zh:` hashes."""
    for lock in INFRA.rglob(".terraform.lock.hcl"):
        assert "zh:" in lock.read_text(), f"{lock}: not made from the registry (a stand-in's lock file?)"

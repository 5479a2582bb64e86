"""The node agent bundle through real Terraform core: the env uploads the bundle pyctl render built into its
own model-cache bucket, content-addressed and encrypted, and a missing or tampered bundle file fails the plan
with one line naming it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fakes.tfprovider.harness import copy_infra

from .conftest import INFRA, Root, local_backend, render_env

ENV = "prod"  # AWS and GCP pools in one env


@pytest.fixture
def prod_root(root_in, tmp_path: Path) -> Root:
    infra = copy_infra(INFRA, tmp_path / "own" / "infra")  # its own copy: this test edits the bundle files
    render_env(infra, ENV)
    root = root_in("envs/prod")
    root = Root(infra / "envs" / ENV, root.env)
    local_backend(root.dir)
    root.tf("init", "-input=false", "-no-color")
    return root


def _planned(plan: dict, address_suffix: str) -> dict:
    for rc in plan["resource_changes"]:
        if rc["address"].endswith(address_suffix):
            return rc["change"]["after"]
    raise AssertionError(f"no {address_suffix} in the plan")


@pytest.mark.slow
def test_bundles_are_uploaded_content_addressed_and_a_bad_file_fails_the_plan(prod_root: Root) -> None:
    variables = json.loads((prod_root.dir / "agent_bundles.auto.tfvars.json").read_text())
    for cloud in ("aws", "gcp"):
        bundle = variables[f"{cloud}_agent_bundle"]
        data = (prod_root.dir / bundle["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == bundle["sha256"]

    prod_root.tf("plan", "-input=false", "-no-color", "-out=bundle.tfplan")
    plan = prod_root.show_json("bundle.tfplan")
    tfvars = json.loads((prod_root.dir / "terraform.tfvars.json").read_text())
    aws_sha = variables["aws_agent_bundle"]["sha256"]
    s3 = _planned(plan, "module.model_cache[0].aws_s3_object.agent_bundle[0]")
    assert s3["bucket"] == tfvars["model_cache"]["aws"]["bucket"]
    assert s3["key"] == f"agent/{aws_sha}.tar.gz"
    assert s3["server_side_encryption"] == "aws:kms" and s3["checksum_algorithm"] == "SHA256"
    assert s3["kms_key_id"] == tfvars["model_cache"]["aws"]["kms_key_arn"]
    assert s3["source"].endswith("/.pyctl-build/agent-aws.tar.gz")
    gcs = _planned(plan, "module.model_cache[0].google_storage_bucket_object.agent_bundle[0]")
    assert gcs["bucket"] == tfvars["model_cache"]["gcp"]["bucket"]
    assert gcs["name"] == f"agent/{variables['gcp_agent_bundle']['sha256']}.tar.gz"
    # prod's GCS bucket has no CMEK: the object then takes the bucket's default (Google-managed) encryption.
    assert tfvars["model_cache"]["gcp"]["kms_key_name"] is None and gcs.get("kms_key_name") is None
    assert gcs["source"].endswith("/.pyctl-build/agent-gcp.tar.gz")

    # A tampered AWS bundle and a missing GCP one: the plan stops, one line per bundle names the file.
    aws_file = prod_root.dir / variables["aws_agent_bundle"]["path"]
    aws_file.write_bytes(aws_file.read_bytes() + b"\0")
    (prod_root.dir / variables["gcp_agent_bundle"]["path"]).unlink()
    failed = prod_root.tf("plan", "-input=false", "-no-color", ok=(1,))
    errors = " ".join(failed.stderr.split())  # Terraform wraps a long message to the terminal width
    for name in ("agent-aws.tar.gz", "agent-gcp.tar.gz"):
        message = f"agent_bundle: ./.pyctl-build/{name} is missing or its sha256 is not agent_bundle.sha256; run `pyctl render`."
        assert message in errors, failed.stderr[-3000:]
    assert errors.count("Resource precondition failed") == 2

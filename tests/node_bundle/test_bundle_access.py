"""Who may read the agent bundle, and what the boot templates are handed: read from the modules' HCL.

The node identities get exactly the bundle prefix (`<key_prefix>agent/`), read-only; the checkpoint (write)
grants do not widen to it; the pools hand the boot templates the bundle's bucket, key and sha256.
(The plan of the objects themselves runs on real Terraform core: tests/terraform_exec/test_agent_bundle.py.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from terraform.tfconfig import INFRA, load_module  # noqa: E402

AWS_CACHE = load_module(INFRA / "modules" / "aws-model-cache")
GCP_CACHE = load_module(INFRA / "modules" / "gcp-model-cache")


def _statements(module, name: str) -> list[dict]:
    doc = next(r for r in module.resources("data") if r.type == "aws_iam_policy_document" and r.name == name)
    statements = doc.body["statement"]
    return statements if isinstance(statements, list) else [statements]


def test_aws_nodes_may_only_get_objects_under_the_agent_prefix() -> None:
    assert AWS_CACHE.locals()["agent_prefix"] == "${var.key_prefix}agent/"
    read = [s for s in _statements(AWS_CACHE, "read") if "agent_prefix" in str(s)]
    assert read == [
        {
            "sid": "ReadAgentBundle",
            "actions": ["s3:GetObject"],
            "resources": ["${local.bucket_arn}/${local.agent_prefix}*"],
            "__is_block__": True,
        }
    ]
    assert not any("agent_prefix" in str(s) for s in _statements(AWS_CACHE, "write"))


def test_gcp_read_grant_adds_the_agent_prefix_and_the_write_grant_does_not() -> None:
    local = GCP_CACHE.locals()
    assert local["agent_prefix"] == "${var.key_prefix}agent/"
    read = str(local["read_condition"])
    assert 'resource.name.startsWith(\\"${local.object_path}${local.agent_prefix}\\")' in read
    assert "agent" not in str(local["write_condition"])


def test_objects_are_content_addressed_under_the_agent_prefix_and_encrypted() -> None:
    s3 = next(r for r in AWS_CACHE.resources() if r.type == "aws_s3_object").body
    assert s3["key"] == "${local.agent_prefix}${var.agent_bundle.sha256}.tar.gz"
    assert s3["server_side_encryption"] == "aws:kms" and s3["kms_key_id"] == "${var.kms_key_arn}"
    assert s3["checksum_algorithm"] == "SHA256"
    gcs = next(r for r in GCP_CACHE.resources() if r.type == "google_storage_bucket_object").body
    assert gcs["name"] == "${local.agent_prefix}${var.agent_bundle.sha256}.tar.gz"
    assert gcs["kms_key_name"] == "${var.kms_key_name}"


def test_pools_hand_the_boot_templates_the_bundle() -> None:
    for pool, local in (("aws-gpu-pool", "user_data"), ("gcp-gpu-pool", "startup_script")):
        expression = str(load_module(INFRA / "modules" / pool).locals()[local])
        args = dict(re.findall(r"(agent_\w+) = ([^,}]+)", expression))
        assert args == {
            "agent_bundle_bucket": "var.agent_bundle.bucket",
            "agent_bundle_key": "var.agent_bundle.key",
            "agent_bundle_sha256": "var.agent_bundle.sha256",
        }, pool  # (the templates no longer take agent_package)
        variables = load_module(INFRA / "modules" / pool).labelled("variable")
        assert "agent_package" not in variables and "agent_bundle" in variables

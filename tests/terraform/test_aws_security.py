"""What matters on AWS, asserted on the configuration of every module under infra/:
IMDSv2 required, no public IP, every volume and bucket encrypted, every taggable resource tagged (and
instances/volumes via the launch template and group), nothing secret-looking in user data, and a node role
that grants nothing beyond the listed actions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .tfconfig import (
    INFRA,
    REPO_ROOT,
    Resource,
    TfModule,
    expressions,
    is_block,
    load_module,
    module_dirs,
)
from .tfschema_check import load_schema

MODULES = [load_module(d) for d in module_dirs()]
AWS_RESOURCES = [r for m in MODULES for r in m.resources() if r.type.startswith("aws_")]
POOL = load_module(INFRA / "modules" / "aws-gpu-pool")
CACHE = load_module(INFRA / "modules" / "aws-model-cache")

# The node role's whole grant: managed policies for SSM and the CloudWatch agent, plus these actions.
NODE_MANAGED_POLICIES = {"AmazonSSMManagedInstanceCore", "CloudWatchAgentServerPolicy"}
NODE_ACTIONS = {
    "s3:ListBucket",  # models/ and checkpoints/ prefixes only (condition on s3:prefix)
    "s3:GetObject",  # models/*, checkpoints/* (resume)
    "s3:PutObject",  # checkpoints/*
    "s3:AbortMultipartUpload",  # checkpoints/*
    "s3:DeleteObject",  # checkpoints/* (keep the last N)
    "kms:Decrypt",  # the cache's customer key, when it has one
    "kms:GenerateDataKey",  # idem, for checkpoint uploads
    "ssm:GetParameter",  # the named boot-secret parameters
    "secretsmanager:GetSecretValue",  # the named boot secrets
}


def _first(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    assert is_block(value), f"{key} block missing"
    return value[0]


def _static_and_dynamic(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The blocks `key` written statically or as `dynamic` content."""
    found = list(body.get(key, [])) if is_block(body.get(key)) else []
    for dynamic in body.get("dynamic", []):
        if key in dynamic:
            found += dynamic[key]["content"]
    return found


def _by_type(rtype: str) -> list[Resource]:
    return [r for r in AWS_RESOURCES if r.type == rtype]


def test_the_modules_hold_the_resources_these_assertions_cover() -> None:
    assert {r.type for r in POOL.resources()} >= {
        "aws_launch_template",
        "aws_autoscaling_group",
        "aws_iam_role",
    }
    assert {r.type for r in CACHE.resources()} >= {
        "aws_s3_bucket",
        "aws_s3_bucket_server_side_encryption_configuration",
    }


@pytest.mark.parametrize(
    "template", _by_type("aws_launch_template"), ids=lambda r: f"{r.file.parent.name}:{r.name}"
)
def test_launch_templates_require_imdsv2_with_hop_limit_one(template: Resource) -> None:
    options = _first(template.body, "metadata_options")
    assert options["http_tokens"] == "required"
    assert options["http_put_response_hop_limit"] == 1
    assert options.get("http_endpoint", "enabled") == "enabled"


def test_no_instance_or_interface_gets_a_public_ip() -> None:
    for template in _by_type("aws_launch_template"):
        interfaces = _static_and_dynamic(template.body, "network_interfaces")
        assert interfaces, (
            f"{template.address}: set network_interfaces with associate_public_ip_address = false"
        )
        for interface in interfaces:
            assert interface.get("associate_public_ip_address") in ("false", False), template.address
    for instance in _by_type("aws_instance"):
        assert instance.body.get("associate_public_ip_address") in ("false", False), instance.address
    for subnet in _by_type("aws_subnet"):
        assert subnet.body.get("map_public_ip_on_launch") in (None, False, "false"), subnet.address


def test_every_volume_is_encrypted() -> None:
    for template in _by_type("aws_launch_template"):
        mappings = _static_and_dynamic(template.body, "block_device_mappings")
        assert mappings, f"{template.address}: declare the root volume (encrypted gp3)"
        for mapping in mappings:
            ebs = _first(mapping, "ebs")
            assert ebs.get("encrypted") in ("true", True), f"{template.address}: unencrypted volume"
            assert ebs.get("volume_type") == "gp3"
    for volume in _by_type("aws_ebs_volume"):
        assert volume.body.get("encrypted") in ("true", True), volume.address


def test_every_bucket_is_encrypted_with_kms_private_and_tls_only() -> None:
    for module in MODULES:
        buckets = [r for r in module.resources() if r.type == "aws_s3_bucket"]
        for bucket in buckets:
            ref = f"aws_s3_bucket.{bucket.name}.id"

            def attached(rtype: str, module: TfModule = module, ref: str = ref) -> list[Resource]:
                return [r for r in module.resources() if r.type == rtype and ref in str(r.body.get("bucket"))]

            sse = attached("aws_s3_bucket_server_side_encryption_configuration")
            assert sse, f"{module.dir}: {bucket.address} has no encryption configuration"
            default = _first(_first(sse[0].body, "rule"), "apply_server_side_encryption_by_default")
            assert default["sse_algorithm"] == "aws:kms"
            public = attached("aws_s3_bucket_public_access_block")
            assert public and all(
                public[0].body[k] is True
                for k in (
                    "block_public_acls",
                    "block_public_policy",
                    "ignore_public_acls",
                    "restrict_public_buckets",
                )
            )
            assert attached("aws_s3_bucket_versioning")
            policy = attached("aws_s3_bucket_policy")
            assert policy, f"{module.dir}: {bucket.address} has no bucket policy"
            assert "aws:SecureTransport" in module.text()


def _taggable(resource: Resource) -> bool:
    schema = load_schema("aws")["resources" if resource.kind == "resource" else "data_sources"][resource.type]
    return "tags" in schema.get("attributes", {})


def test_every_taggable_resource_is_tagged() -> None:
    untagged = [
        f"{r.file.relative_to(REPO_ROOT)}: {r.address}"
        for r in AWS_RESOURCES
        if _taggable(r) and not r.body.get("tags")
    ]
    assert untagged == []


def test_pool_tags_are_merged_once_and_reach_instances_and_volumes() -> None:
    tags_local = POOL.locals()["tags"]
    for key in ("Env", "Pool", "CapacityKind", "AutoShutdown", "pyctl:env", "pyctl:pool", "pyctl:capacity"):
        assert f"{key}" in str(tags_local), key
    assert "CostCenter" in str(tags_local)
    for resource in POOL.resources():
        if _taggable(resource):
            assert resource.body["tags"] == "${local.tags}", resource.address
    template = next(r for r in POOL.resources() if r.type == "aws_launch_template")
    spec = _static_and_dynamic(template.body, "tag_specifications")[0]
    assert spec["tags"] == "${local.tags}"
    resource_types = next(d for d in template.body["dynamic"] if "tag_specifications" in d)[
        "tag_specifications"
    ]
    assert all(t in resource_types["for_each"] for t in ('"instance"', '"volume"', '"network-interface"'))
    group = next(r for r in POOL.resources() if r.type == "aws_autoscaling_group")
    tag = next(d for d in group.body["dynamic"] if "tag" in d)["tag"]
    assert tag["for_each"] == "${local.tags}"
    assert tag["content"][0]["propagate_at_launch"] is True


def _policy_actions(module: TfModule, names: set[str] | None = None) -> set[str]:
    actions: set[str] = set()
    for doc in module.resources("data"):
        if doc.type != "aws_iam_policy_document" or (names is not None and doc.name not in names):
            continue
        for statement in _static_and_dynamic(doc.body, "statement"):
            actions.update(statement.get("actions", []))
            assert "not_actions" not in statement
            for resource in statement.get("resources", []):
                assert resource != "*", f"{doc.address}: a statement on every resource"
    return actions


def test_node_role_grants_nothing_beyond_the_listed_actions() -> None:
    # The node policy is the pool's own statements plus the cache's read and write documents.
    node_doc = next(
        r for r in POOL.resources("data") if r.type == "aws_iam_policy_document" and r.name == "node"
    )
    assert node_doc.body["source_policy_documents"] == [
        "${var.model_cache.read_policy_json}",
        "${var.model_cache.write_policy_json}",
    ]
    granted = _policy_actions(POOL, {"node"}) | _policy_actions(CACHE, {"read", "write"})
    assert granted == NODE_ACTIONS

    attachments = [r for r in POOL.resources() if r.type == "aws_iam_role_policy_attachment"]
    assert len(attachments) == 1
    assert set(json.loads(attachments[0].body["for_each"].removeprefix("${toset(").removesuffix(")}"))) == (
        NODE_MANAGED_POLICIES
    )
    role_policies = [r for r in POOL.resources() if r.type == "aws_iam_role_policy"]
    assert [p.body["policy"] for p in role_policies] == ["${data.aws_iam_policy_document.node.json}"]
    role = next(r for r in POOL.resources() if r.type == "aws_iam_role")
    assert "inline_policy" not in role.body and "managed_policy_arns" not in role.body
    assert _policy_actions(POOL, {"assume"}) == {"sts:AssumeRole"}


def test_the_stack_wires_the_cache_documents_into_the_pools() -> None:
    stack = load_module(INFRA / "stacks" / "aws")
    pool_call = stack.labelled("module")["pool"]
    cache = pool_call["model_cache"]
    assert cache["read_policy_json"] == "${local.cache.read_policy_json}"
    assert cache["write_policy_json"] == "${local.cache.write_policy_json}"


# --- user data ------------------------------------------------------------------------------------------

_SECRET_SOURCES = re.compile(
    r"aws_secretsmanager_secret_version|aws_ssm_parameter\.\w+(\[\d+\])?\.value|random_password|sensitive\(|"
    r"aws_iam_access_key|tls_private_key"
)


def _user_data_expression(module: TfModule) -> str:
    return str(module.locals()["user_data"])


def test_nothing_secret_flows_into_user_data() -> None:
    expr = _user_data_expression(POOL)
    assert "templatefile(" in expr
    assert not _SECRET_SOURCES.search(expr)
    # Every value passed to the template comes from a variable or local that is not marked sensitive.
    variables = POOL.labelled("variable")
    for kind, name, _ in re.findall(r"(var|local)\.(\w+)(\.\w+)?", expr):
        if kind == "var":
            assert variables[name].get("sensitive") is not True, name
        else:
            assert not _SECRET_SOURCES.search(str(POOL.locals()[name])), name
    # The boot secrets reach the template as names and sources only.
    assert POOL.locals()["secrets"].count("=") >= 3
    assert "value" not in POOL.locals()["secrets"]
    # No module under infra/ reads a secret's value into the configuration at all.
    for module in MODULES:
        for text in expressions([doc for doc in module.files.values()]):
            assert not _SECRET_SOURCES.search(text), f"{module.dir}: {text[:80]}"


def test_no_sensitive_variable_or_output_in_the_aws_modules() -> None:
    for module in (POOL, CACHE, load_module(INFRA / "stacks" / "aws")):
        for block in ("variable", "output"):
            for name, body in module.labelled(block).items():
                assert body.get("sensitive") is not True, f"{module.dir.name}: {block} {name}"


def test_user_data_template_vars_match_the_sample_used_in_bootstrap_tests() -> None:
    from .test_bootstrap import SAMPLE

    keys = set(re.findall(r"[{,]\s*(\w+)\s*=(?!=)", _user_data_expression(POOL).split("templatefile(", 1)[1]))
    assert keys == set(SAMPLE)

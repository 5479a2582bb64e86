"""The first-time setup roots (infra/bootstrap/aws, infra/bootstrap/gcp): the state bucket is versioned,
encrypted, TLS only and private; CI identities are trusted only from the right GitHub subjects; the
example inputs satisfy the variables' own validation. fmt, the core loader, the provider-schema check and
checkov cover these roots like every other directory under infra/ (test_config_load, test_provider_schema,
test_checkov)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

from .tfconfig import INFRA, load_module, module_dirs

AWS = INFRA / "bootstrap" / "aws"
GCP = INFRA / "bootstrap" / "gcp"
ROOTS = [AWS, GCP]


def resources(root: Path) -> dict[str, dict[str, Any]]:
    return {r.address: r.body for r in load_module(root).resources()}


def squash(value: Any) -> str:
    """An expression as one line, whitespace collapsed, for matching policy documents."""
    return " ".join(str(value).split())


def example(root: Path) -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    return hcl2.loads((root / "example.tfvars").read_text(), serialization_options=options)


def test_both_roots_are_under_the_offline_checks():
    dirs = module_dirs()
    assert AWS in dirs and GCP in dirs
    for root in ROOTS:
        assert (root / "backend.tf.example").is_file()  # migration target, not loaded by terraform
        assert not (root / "backend.tf").exists()  # first apply runs with local state


def test_aws_state_bucket_is_versioned_kms_encrypted_private_and_tls_only():
    r = resources(AWS)
    assert r["aws_s3_bucket.state"]["lifecycle"][0]["prevent_destroy"] is True
    assert r["aws_s3_bucket_versioning.state"]["versioning_configuration"][0]["status"] == "Enabled"
    sse = r["aws_s3_bucket_server_side_encryption_configuration.state"]["rule"][0]
    default = sse["apply_server_side_encryption_by_default"][0]
    assert default == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": "${aws_kms_key.state.arn}",
        "__is_block__": True,
    }
    assert r["aws_kms_key.state"]["enable_key_rotation"] is True
    pab = r["aws_s3_bucket_public_access_block.state"]
    assert all(
        pab[k] is True
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    )
    assert r["aws_s3_bucket_ownership_controls.state"]["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
    policy = squash(r["aws_s3_bucket_policy.state"]["policy"])
    assert 'Effect = "Deny"' in policy and 'Condition = {Bool = {"aws:SecureTransport" = "false"}}' in policy


def test_aws_ci_roles_trust_only_their_subjects():
    role = resources(AWS)["aws_iam_role.ci"]
    assert role["for_each"] == "${local.ci_roles}"
    trust = squash(role["assume_role_policy"])
    assert "StringLike" not in trust
    assert '"${local.github_issuer}:aud" = "sts.amazonaws.com"' in trust
    assert '"${local.github_issuer}:sub" = each.value.subjects' in trust
    roles = squash(load_module(AWS).locals()["ci_roles"])
    # the plan role: pull requests and the plan branch; each apply role: only its GitHub environment
    assert (
        'subjects = tolist(["${local.repo_subject}:pull_request", '
        '"${local.repo_subject}:ref:refs/heads/${var.plan_branch}"])'
    ) in roles
    assert (
        '"apply-${env}" => {' in roles
        and 'subjects = tolist(["${local.repo_subject}:environment:${env}"])' in roles
    )
    attached = resources(AWS)["aws_iam_role_policy_attachment.plan_read_only"]["policy_arn"]
    assert attached == "arn:aws:iam::aws:policy/ReadOnlyAccess"


def test_aws_inline_policies_name_their_resources():
    r = resources(AWS)
    plan, apply = (
        squash(r["aws_iam_role_policy.plan_state"]["policy"]),
        squash(r["aws_iam_role_policy.apply"]["policy"]),
    )
    for policy in (plan, apply):
        assert 'Resource = "*"' not in policy and 'Action = "*"' not in policy and '"s3:*"' not in policy
    # the plan role writes only lock objects; each apply role only its env's state key and lock
    assert 'Action = ["s3:PutObject", "s3:DeleteObject"], Resource = "${local.bucket_arn}/*.tflock"' in plan
    assert (
        '"${local.bucket_arn}/${each.value.state_key}", "${local.bucket_arn}/${each.value.state_key}.tflock"'
        in apply
    )
    assert "Resource = local.env_iam_resources[each.key]" in apply
    assert 'Condition = {ArnEquals = {"iam:PolicyARN" = local.attachable_policies}}' in apply


def test_gcp_federation_accepts_only_the_repository_and_its_trusted_subjects():
    r = resources(GCP)
    provider = r["google_iam_workload_identity_pool_provider.github"]
    assert provider["oidc"][0]["issuer_uri"] == "https://token.actions.githubusercontent.com"
    condition = squash(provider["attribute_condition"])
    assert 'assertion.repository == "${var.github_repository}"' in condition
    assert 'assertion.sub == \\"${s}\\"' in condition and "local.trusted_subjects" in condition
    local = squash(load_module(GCP).locals()["trusted_subjects"])
    assert "values(local.plan_subjects)" in local and ":environment:${env}" in local
    assert r["google_service_account_iam_member.apply_federation"]["member"] == (
        "${local.principal}/${local.repo_subject}:environment:${each.key}"
    )
    assert r["google_service_account_iam_member.plan_federation"]["for_each"] == "${local.plan_subjects}"


def test_gcp_state_bucket_is_versioned_private_and_lock_writes_are_conditioned():
    r = resources(GCP)
    bucket = r["google_storage_bucket.state"]
    assert bucket["uniform_bucket_level_access"] is True and bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True and bucket["lifecycle"][0]["prevent_destroy"] is True
    lock = squash(r["google_storage_bucket_iam_member.plan_lock"]["condition"][0]["expression"])
    assert 'resource.name.endsWith(".tflock")' in lock
    write = squash(r["google_storage_bucket_iam_member.apply_write_state"]["condition"][0]["expression"])
    assert "${local.state_objects}${each.value}/" in write


_VALIDATION = re.compile(r'can\(regex\("(?P<pattern>(?:[^"\\]|\\.)*)", var\.(?P<name>\w+)\)\)')


@pytest.mark.parametrize("root", ROOTS, ids=lambda r: r.name)
def test_example_inputs_give_every_required_variable_and_pass_its_validation(root: Path):
    variables = load_module(root).labelled("variable")
    values = example(root)
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= set(values), f"example.tfvars lacks {sorted(required - set(values))}"
    assert set(values) <= set(variables), (
        f"example.tfvars sets undeclared {sorted(set(values) - set(variables))}"
    )
    checked = 0
    for name, body in variables.items():
        for validation in body.get("validation", []):
            match = _VALIDATION.search(validation["condition"])
            if match and match["name"] == name and isinstance(values.get(name), str):
                # Terraform's regex is RE2; these patterns use only syntax Python's re reads the same way.
                pattern = match["pattern"].encode().decode("unicode_escape")
                assert re.search(pattern, values[name]), f"{name}={values[name]!r} fails {pattern}"
                checked += 1
    assert checked >= 2


def test_aws_example_matches_the_prod_env_it_would_serve():
    values = example(AWS)
    backend = yaml.safe_load((INFRA / "envs" / "prod" / "env.yaml").read_text())["backend"]["s3"]
    account = yaml.safe_load((INFRA / "envs" / "prod" / "env.yaml").read_text())["clouds"]["aws"][
        "account_id"
    ]
    assert values["state_bucket"] == backend["bucket"] and values["account_id"] == account
    assert values["envs"]["prod"]["state_key"] == backend["key"]

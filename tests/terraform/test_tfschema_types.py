"""The exact Terraform types in tests/data/tfschema/*.json.gz (`cty`, block `nesting`, `min_items`).

Regenerated from the CDK-Terrain wheels by tests/tools/tfschema_types.py; these tests need neither the wheels
nor the network. The facts below were checked against the providers' own schemas: `terraform providers
schema -json` of hashicorp/aws 6.19.0 and hashicorp/google 7.9.0 (a public dump), the provider source and
registry docs; where the provider changed a type since, the fact names the change.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import Any

import pytest

from .tfconfig import INFRA, parse_file
from .tfschema_check import SCHEMA_DIR, provider_of, tf_files
from .tftypes import is_type_expression, iter_attributes, terraform_json_block

PROVIDERS = ("aws", "google", "google-beta")
SECTIONS = ("resources", "data_sources", "ephemeral_resources")
STRING_SET = ["set", "string"]
STRING_LIST = ["list", "string"]
STRING_MAP = ["map", "string"]


@cache
def schema(provider: str) -> dict[str, Any]:
    with gzip.open(SCHEMA_DIR / f"{provider}.json.gz", "rt", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def node(provider: str, path: str) -> dict[str, Any]:
    """The attribute or block at `path`: "resources.TYPE.a.b" / "data_sources.TYPE..." / "provider.a"."""
    parts = path.split(".")
    if parts[0] == "provider":
        current, rest = schema(provider)["provider"], parts[1:]
    else:
        current, rest = schema(provider)[parts[0]][parts[1]], parts[2:]
    for name in rest:
        if name in current.get("attributes", {}):
            current = current["attributes"][name]
        elif name in current.get("blocks", {}):
            current = current["blocks"][name]
        else:
            current = current["object"]["attributes"][name]
    return current


def every_block(provider: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, block) for the provider block, every type's block and every nested block."""
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(path: str, block: dict[str, Any]) -> None:
        out.append((path, block))
        for name, sub in block.get("blocks", {}).items():
            walk(f"{path}.{name}", sub)

    walk("provider", schema(provider)["provider"])
    for section in SECTIONS:
        for rtype, block in schema(provider)[section].items():
            walk(f"{section}.{rtype}", block)
    return out


SG_RULE = [
    "set",
    [
        "object",
        {
            "cidr_blocks": STRING_LIST,
            "description": "string",
            "from_port": "number",
            "ipv6_cidr_blocks": STRING_LIST,
            "prefix_list_ids": STRING_LIST,
            "protocol": "string",
            "security_groups": STRING_SET,
            "self": "bool",
            "to_port": "number",
        },
    ],
]

# (provider, path, expected cty) -- attributes
ATTRIBUTE_FACTS = [
    # sets vs lists of strings
    ("aws", "resources.aws_instance.vpc_security_group_ids", STRING_SET),
    ("aws", "resources.aws_autoscaling_group.availability_zones", STRING_SET),
    ("aws", "resources.aws_iam_role.managed_policy_arns", STRING_SET),
    ("aws", "data_sources.aws_iam_policy_document.statement.actions", STRING_SET),
    ("aws", "resources.aws_launch_template.security_group_names", STRING_SET),
    ("google", "resources.google_compute_instance.tags", STRING_SET),
    ("google", "resources.google_compute_instance.service_account.scopes", STRING_SET),
    ("google", "resources.google_compute_firewall.source_ranges", STRING_SET),
    ("google", "resources.google_compute_firewall.allow.ports", STRING_LIST),
    ("google", "resources.google_storage_bucket.lifecycle_rule.condition.matches_storage_class", STRING_LIST),
    ("google", "provider.scopes", STRING_LIST),
    ("google-beta", "resources.google_compute_firewall.source_ranges", STRING_SET),
    ("google-beta", "provider.scopes", STRING_LIST),
    # google 8.0 made these sets (GoogleCloudPlatform/magic-modules#18694)
    ("google", "resources.google_compute_service_attachment.nat_subnets", STRING_SET),
    ("aws", "provider.allowed_account_ids", STRING_SET),
    ("aws", "provider.ignore_tags.keys", STRING_SET),
    # maps and numbers
    ("aws", "resources.aws_lambda_function.environment.variables", STRING_MAP),
    ("aws", "provider.default_tags.tags", STRING_MAP),
    ("aws", "resources.aws_ec2_capacity_reservation.instance_count", "number"),
    ("google", "resources.google_compute_instance.labels", STRING_MAP),
    ("google", "resources.google_compute_instance_template.metadata", STRING_MAP),
    # computed-only (no type before): strings, numbers, maps, inside blocks too
    ("aws", "resources.aws_launch_template.latest_version", "number"),
    ("aws", "resources.aws_launch_template.arn", "string"),
    ("aws", "resources.aws_instance.ebs_block_device.volume_id", "string"),
    ("aws", "resources.aws_vpc_security_group_ingress_rule.tags_all", STRING_MAP),
    ("aws", "data_sources.aws_ssm_parameter.value", "string"),
    ("google", "resources.google_compute_instance_template.self_link", "string"),
    ("google", "resources.google_compute_instance.effective_labels", STRING_MAP),
    ("google", "resources.google_container_cluster.endpoint", "string"),
    ("google-beta", "resources.google_compute_instance_template.self_link", "string"),
    ("google-beta", "resources.google_compute_instance.tags", STRING_SET),
    ("google-beta", "resources.google_compute_instance.effective_labels", STRING_MAP),
    # objects: attributes as blocks, computed lists of objects, framework object and map-of-object attributes
    ("aws", "resources.aws_security_group.ingress", SG_RULE),
    ("aws", "resources.aws_security_group.egress", SG_RULE),
    (
        "aws",
        "resources.aws_eks_cluster.identity",
        ["list", ["object", {"oidc": ["list", ["object", {"issuer": "string"}]]}]],
    ),
    ("aws", "resources.aws_eks_cluster.certificate_authority", ["list", ["object", {"data": "string"}]]),
    (
        "aws",
        "data_sources.aws_ami.block_device_mappings",
        [
            "set",
            [
                "object",
                {"device_name": "string", "ebs": STRING_MAP, "no_device": "string", "virtual_name": "string"},
            ],
        ],
    ),
    (
        "aws",
        "resources.aws_s3tables_table.encryption_configuration",
        ["object", {"kms_key_arn": "string", "sse_algorithm": "string"}],
    ),
    (
        "aws",
        "resources.aws_lexv2models_bot_version.locale_specification",
        ["map", ["object", {"source_bot_version": "string"}]],
    ),
    # nested collections whose inner kind comes from the provider source
    ("aws", "resources.aws_servicequotas_auto_management.exclusion_list", ["map", STRING_LIST]),
    (
        "aws",
        "resources.aws_customerprofiles_domain.matching.auto_merging.consolidation.matching_attributes_list",
        ["list", STRING_LIST],
    ),
    (
        "aws",
        "data_sources.aws_networkmanager_core_network_policy_document.segment_actions.via.with_edge_override"
        ".edge_sets",
        ["set", STRING_SET],
    ),
]

# (provider, path, nesting, max_items, min_items or None when unknown) -- blocks
BLOCK_FACTS = [
    ("aws", "resources.aws_instance.ebs_block_device", "set", None, 0),
    ("aws", "resources.aws_instance.root_block_device", "list", 1, 0),
    ("aws", "resources.aws_autoscaling_group.tag", "set", None, 0),
    ("aws", "resources.aws_autoscaling_group.timeouts", "single", None, 0),
    (
        "aws",
        "resources.aws_autoscaling_group.mixed_instances_policy.launch_template.override",
        "list",
        None,
        0,
    ),
    ("aws", "resources.aws_iam_role.inline_policy", "set", None, 0),
    ("aws", "resources.aws_dynamodb_table.attribute", "set", None, 0),
    ("aws", "resources.aws_launch_template.block_device_mappings.ebs", "list", 1, 0),
    ("aws", "data_sources.aws_iam_policy_document.statement", "list", None, 0),
    ("aws", "data_sources.aws_iam_policy_document.statement.principals", "set", None, 0),
    ("aws", "resources.aws_s3_bucket_server_side_encryption_configuration.rule", "set", None, None),
    (
        "aws",
        "resources.aws_s3_bucket_server_side_encryption_configuration.rule.apply_server_side_encryption_by_default",
        "list",
        1,
        0,
    ),
    ("aws", "resources.aws_scheduler_schedule.target", "list", 1, 1),
    ("aws", "provider.endpoints", "set", None, 0),
    ("aws", "provider.assume_role", "list", None, 0),
    ("google", "resources.google_compute_instance.network_interface", "list", None, None),
    ("google", "resources.google_compute_instance.network_interface.access_config", "list", None, 0),
    ("google", "resources.google_compute_instance.scheduling.node_affinities", "set", None, 0),
    ("google", "resources.google_compute_firewall.allow", "set", None, 0),
    ("google", "resources.google_container_cluster.master_auth", "list", 1, 0),
    ("google", "resources.google_storage_bucket.lifecycle_rule.condition", "set", 1, 1),
    ("google", "resources.google_compute_instance_group_manager.named_port", "set", None, 0),
    ("google", "resources.google_storage_bucket.timeouts", "single", None, 0),
    ("google", "provider.batching", "list", None, 0),
    ("google-beta", "resources.google_compute_instance.guest_accelerator", "list", None, 0),
    ("google-beta", "resources.google_compute_instance_template.disk", "list", None, None),
    ("google-beta", "resources.google_container_cluster.node_config.guest_accelerator", "list", None, 0),
]


@pytest.mark.parametrize(("provider", "path", "expected"), ATTRIBUTE_FACTS, ids=lambda v: str(v)[:60])
def test_attribute_types_match_the_provider(provider: str, path: str, expected: Any) -> None:
    assert node(provider, path)["cty"] == expected


@pytest.mark.parametrize(
    ("provider", "path", "nesting", "max_items", "min_items"), BLOCK_FACTS, ids=lambda v: str(v)[:60]
)
def test_block_nesting_matches_the_provider(
    provider: str, path: str, nesting: str, max_items: int | None, min_items: int | None
) -> None:
    block = node(provider, path)
    assert "cty" not in block
    assert (block["nesting"], block["max_items"], block.get("min_items")) == (nesting, max_items, min_items)


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("aws", "resources.aws_db_instance.password_wo"),
        ("aws", "resources.aws_acm_certificate.private_key_wo"),
        ("google", "resources.google_secret_manager_secret_version.secret_data_wo"),
    ],
)
def test_write_only_attributes_are_marked(provider: str, path: str) -> None:
    attr = node(provider, path)
    assert attr["write_only"] is True and attr["cty"] == "string"


def test_attributes_that_are_not_write_only_have_no_flag() -> None:
    assert "write_only" not in node("aws", "resources.aws_db_instance.password")


def test_the_generator_s_provider_alias_is_not_in_the_schema() -> None:
    for provider in PROVIDERS:
        assert "alias" not in schema(provider)["provider"]["attributes"]


def _used_types() -> set[tuple[str, str, str]]:
    """(provider, section, type) of every resource and data source under infra/ (google_ types: both)."""
    used: set[tuple[str, str, str]] = set()
    for path in tf_files([INFRA]):
        doc = parse_file(path)
        for kind, section in (("resource", "resources"), ("data", "data_sources")):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    if rtype.startswith("__"):
                        continue
                    for _name, body in named.items():
                        if _name.startswith("__"):
                            continue
                        provider = provider_of(rtype, body.get("provider"))
                        if provider in PROVIDERS:
                            used.add((provider, section, rtype))
                            if provider == "google" and rtype in schema("google-beta")[section]:
                                used.add(("google-beta", section, rtype))
    return used


def test_every_attribute_of_the_types_infra_uses_has_a_type() -> None:
    used = _used_types()
    assert len(used) >= 40
    assert ("aws", "resources", "aws_launch_template") in used
    assert ("google", "resources", "google_compute_instance_template") in used
    missing = []
    for provider, section, rtype in sorted(used):
        for path, attr in iter_attributes(schema(provider)[section][rtype]):
            if "cty" not in attr:
                missing.append(f"{provider}: {section}.{rtype}.{path}")
    for provider in PROVIDERS:  # the provider blocks too
        for path, attr in iter_attributes(schema(provider)["provider"]):
            if "cty" not in attr:
                missing.append(f"{provider}: provider.{path}")
    assert missing == []


def test_every_type_is_well_formed_and_coverage_is_above_99_percent() -> None:
    for provider in PROVIDERS:
        typed = total = 0
        for _, block in every_block(provider):
            for name, attr in block.get("attributes", {}).items():
                total += 1
                assert "attributes" not in attr, f"{name}: a nested attribute (protocol 6); none expected"
                if "cty" in attr:
                    typed += 1
                    assert is_type_expression(attr["cty"]), (name, attr["cty"])
        assert typed / total > 0.999, (provider, typed, total)


def test_untyped_attributes_are_exactly_the_listed_ones() -> None:
    listed: dict[str, set[str]] = {p: set() for p in PROVIDERS}
    for line in (SCHEMA_DIR / "untyped.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            provider, path, _why = line.split("\t")
            listed[provider].add(path)
    for provider in PROVIDERS:
        found = {
            f"{path}.{name}"
            for path, block in every_block(provider)
            for name, attr in block.get("attributes", {}).items()
            if "cty" not in attr
        }
        found = {
            p.replace("provider.", f"provider.{provider}.", 1) if p.startswith("provider.") else p
            for p in found
        }
        in_file = {entry.split("\t")[0] for entry in schema(provider)["types_source"]["untyped"]}
        assert found == listed[provider] == in_file, provider
    # the generator replaced these subtrees by `any` (QuickSight `definition`, WAFv2 `rule.statement`)
    assert sum(len(v) for v in listed.values()) == 6
    assert all("quicksight" in p or "wafv2" in p for p in listed["aws"])


def test_object_valued_attributes_agree_with_their_type() -> None:
    """The checker's `object` / `nesting` on attributes (SDKv2 attributes as blocks, framework objects) and
    the `cty` say the same: the collection kind and the object's attribute names and types."""
    seen = 0

    def check(name: str, attr: dict[str, Any]) -> None:
        nonlocal seen
        seen += 1
        cty = attr["cty"]
        assert attr["nesting"] == ("single" if cty[0] == "object" else cty[0]), name
        obj = cty if cty[0] == "object" else cty[1]
        assert obj[0] == "object", name
        inner = attr["object"]["attributes"]
        assert set(inner) == set(obj[1]), name
        for key, sub in inner.items():
            assert sub["cty"] == obj[1][key], f"{name}.{key}"
            if "object" in sub:
                check(f"{name}.{key}", sub)

    for provider in PROVIDERS:
        for path, block in every_block(provider):
            for name, attr in block.get("attributes", {}).items():
                if "object" in attr and "cty" in attr:
                    check(f"{provider}: {path}.{name}", attr)
    assert seen >= 70  # 71 in aws (59 SDKv2 attributes as blocks, 12 framework objects)


def test_block_nesting_and_item_counts_are_consistent() -> None:
    for provider in PROVIDERS:
        for path, block in every_block(provider):
            for name, sub in block.get("blocks", {}).items():
                at = f"{provider}: {path}.{name}"
                assert sub["nesting"] in ("list", "set", "single"), at
                assert sub["max_items"] in (1, None), at
                assert "cty" not in sub, at
                if sub["nesting"] == "single":
                    assert (sub["min_items"], sub["max_items"], sub["required"]) == (0, None, False), at
                elif not sub["required"]:
                    assert sub["min_items"] == 0, at
                elif sub["max_items"] == 1:
                    assert sub["min_items"] == 1, at
                else:
                    assert "min_items" not in sub, at  # at least 1; the exact number is not known


def test_types_source_names_the_wheels() -> None:
    expected = {
        "aws": ("cdktn-provider-aws", "25.8.1"),
        "google": ("cdktn-provider-google", "21.1.0"),
        "google-beta": ("cdktn-provider-google-beta", "21.1.0"),
    }
    for provider, (package, version) in expected.items():
        source = schema(provider)["types_source"]
        assert (source["package"], source["version"]) == (package, version)
        assert source["wheel"].endswith(".whl") and len(source["wheel_sha256"]) == 64
        assert source["stats"]["attr_typed"] > 35000


def test_schema_files_are_deterministic_gzip() -> None:
    for provider in PROVIDERS:
        raw = (SCHEMA_DIR / f"{provider}.json.gz").read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
        text = gzip.decompress(raw).decode()
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    ("t", "ok"),
    [
        ("string", True),
        ("bool", True),
        ("dynamic", True),
        (["set", "number"], True),
        (["map", ["list", ["object", {"a": "string"}]]], True),
        (["tuple", ["string", "number"]], True),
        (["object", {"a": "string"}, ["a"]], True),
        ("boolean", False),
        ("stringList", False),
        (["list"], False),
        (["list", "string", "x"], False),
        (["object", ["a"]], False),
        (["object", {"a": "strng"}], False),
        (["list?", "string"], False),
    ],
)
def test_is_type_expression(t: Any, ok: bool) -> None:
    assert is_type_expression(t) is ok


def test_terraform_json_block_prints_what_terraform_prints() -> None:
    """google_project_iam_member, as `terraform providers schema -json` prints it (descriptions left out)."""
    block = terraform_json_block(schema("google")["resources"]["google_project_iam_member"])
    assert block == {
        "attributes": {
            "etag": {"computed": True, "type": "string"},
            "id": {"computed": True, "optional": True, "type": "string"},
            "member": {"required": True, "type": "string"},
            "project": {"required": True, "type": "string"},
            "role": {"required": True, "type": "string"},
        },
        "block_types": {
            "condition": {
                "block": {
                    "attributes": {
                        "description": {"optional": True, "type": "string"},
                        "expression": {"required": True, "type": "string"},
                        "title": {"required": True, "type": "string"},
                    }
                },
                "max_items": 1,
                "nesting_mode": "list",
            }
        },
    }


def test_terraform_json_block_converts_every_schema() -> None:
    for provider in PROVIDERS:
        assert terraform_json_block(schema(provider)["provider"])["attributes"]
        for section in SECTIONS:
            for block in schema(provider)[section].values():
                terraform_json_block(block, untyped="skip")
    wafv2 = terraform_json_block(schema("aws")["resources"]["aws_wafv2_web_acl_rule"])
    statement = wafv2["block_types"]["statement"]["block"]["block_types"]
    # the recursion the generator introduced is expanded twice, then left out
    inner = statement["and_statement"]["block"]["block_types"]["statement"]["block"]["block_types"]
    assert "and_statement" in inner
    with pytest.raises(ValueError):
        terraform_json_block(schema("aws")["resources"]["aws_wafv2_web_acl"]["blocks"]["rule"])

"""Every resource, data source and provider block under infra/ against the real provider schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tfconfig import INFRA, module_dirs
from .tfschema_check import SchemaChecker, check_paths, provider_of, tf_files


def test_infra_matches_the_provider_schemas() -> None:
    findings = check_paths([INFRA])
    assert [str(f) for f in findings] == []


def test_the_check_covers_the_aws_resources() -> None:
    checked = "\n".join(p.read_text() for p in tf_files([INFRA]))
    for rtype in (
        "aws_launch_template",
        "aws_autoscaling_group",
        "aws_ec2_capacity_reservation",
        "aws_ec2_capacity_block_reservation",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_iam_role",
    ):
        assert f'resource "{rtype}"' in checked
    assert len(module_dirs()) >= 9


BAD_CASES = [
    # (body of `resource "aws_launch_template" "t"` or a whole file, expected finding)
    ('arn = "x"', "aws_launch_template.t.arn: is read-only"),
    ('metadata_options = { http_tokens = "required" }', "aws_launch_template.t.metadata_options: is a block"),
    (
        "network_interfaces {\n    associate_public_ip = false\n  }",
        "network_interfaces.associate_public_ip: unknown",
    ),
    ('user_data {\n    x = "y"\n  }', "aws_launch_template.t.user_data: is an argument"),
    (
        'dynamic "tag_specifications" {\n    for_each = []\n    content {\n      resource_typo = "instance"\n    }\n  }',
        "dynamic.tag_specifications.content.resource_typo: unknown",
    ),
    ('dynamic "not_a_block" {\n    for_each = []\n    content {}\n  }', "'not_a_block' is not a block here"),
    (
        "monitoring {\n    enabled = true\n  }\n  monitoring {\n    enabled = false\n  }",
        "at most one monitoring block",
    ),
]


@pytest.mark.parametrize(("body", "expected"), BAD_CASES, ids=[c[1].split(":")[0] for c in BAD_CASES])
def test_checker_reports_a_bad_argument(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "main.tf"
    path.write_text(f'resource "aws_launch_template" "t" {{\n  count = 1\n  {body}\n}}\n')
    messages = [f"{f.address}: {f.message}" for f in SchemaChecker().check_file(path)]
    assert any(expected in m for m in messages), messages


def test_checker_reports_missing_required_arguments_and_blocks(tmp_path: Path) -> None:
    path = tmp_path / "main.tf"
    path.write_text(
        'resource "aws_ec2_capacity_reservation" "r" {\n  instance_type = "p5.48xlarge"\n}\n\n'
        'resource "aws_s3_bucket_server_side_encryption_configuration" "e" {\n  bucket = "b"\n}\n\n'
        'data "aws_nope" "n" {}\n\nprovider "aws" {\n  regionn = "us-east-1"\n}\n'
    )
    messages = {f"{f.address}: {f.message}" for f in SchemaChecker().check_file(path)}
    assert messages == {
        "aws_ec2_capacity_reservation.r.availability_zone: required argument is missing",
        "aws_ec2_capacity_reservation.r.instance_count: required argument is missing",
        "aws_ec2_capacity_reservation.r.instance_platform: required argument is missing",
        "aws_s3_bucket_server_side_encryption_configuration.e.rule: required block is missing",
        "data.aws_nope.n: 'aws_nope' is not a data source of provider aws",
        "provider.aws.regionn: unknown argument or block",
    }


def test_attributes_as_blocks_are_checked_against_the_nested_object(tmp_path: Path) -> None:
    path = tmp_path / "main.tf"
    path.write_text(
        'resource "aws_security_group" "s" {\n  ingress {\n    from_port = 1\n    bogus     = 2\n  }\n'
        "  egress = [{ to_port = 1, nope = 2 }]\n}\n"
    )
    messages = {f"{f.address}: {f.message}" for f in SchemaChecker().check_file(path)}
    assert messages == {
        "aws_security_group.s.ingress.bogus: unknown argument or block",
        "aws_security_group.s.egress.nope: unknown attribute of this object",
    }


@pytest.mark.parametrize(
    ("rtype", "provider_meta", "expected"),
    [
        ("aws_instance", None, "aws"),
        ("google_compute_instance", None, "google"),
        ("google_compute_instance", "${google-beta}", "google-beta"),
        ("google_compute_instance", "${google-beta.west}", "google-beta"),
        ("terraform_data", None, "terraform"),
    ],
)
def test_provider_is_picked_by_prefix_or_provider_meta_argument(
    rtype: str, provider_meta: str | None, expected: str
) -> None:
    assert provider_of(rtype, provider_meta) == expected


def test_google_beta_schema_is_used_for_beta_resources(tmp_path: Path) -> None:
    path = tmp_path / "main.tf"
    path.write_text(
        'resource "google_compute_instance" "g" {\n  provider = google-beta\n  name     = "x"\n}\n'
    )
    messages = {f"{f.address}: {f.message}" for f in SchemaChecker().check_file(path)}
    assert "google_compute_instance.g.machine_type: required argument is missing" in messages
    assert "google_compute_instance.g.boot_disk: required block is missing" in messages

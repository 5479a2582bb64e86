"""Seeded defects: each one, planted in a copy of the HCL, must make real Terraform core (with the stand-in
providers) fail validate or plan with the expected message. The untouched copy passes. This is what the
name checks, config load and checkov cannot see."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fakes.tfprovider.harness import copy_infra

from .conftest import INFRA, Root, local_backend, render_env

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str  # under infra/
    old: str
    new: str
    root: str  # the root whose validate/plan must fail
    expect: str  # in Terraform's error output


POOL = "modules/aws-gpu-pool/main.tf"
MUTATIONS = [
    Mutation(
        "misspelled-nested-argument",
        POOL,
        'http_tokens                 = "required"',
        'http_token                  = "required"',
        "envs/dev",
        "Unsupported argument",
    ),
    Mutation(
        "list-for-string",
        POOL,
        "instance_type          = var.instance_type",
        "instance_type          = [var.instance_type]",
        "envs/dev",
        "Incorrect attribute value type",
    ),
    Mutation(
        "misspelled-module-output",
        "stacks/aws/outputs.tf",
        "name => pool.gpu_capacity",
        "name => pool.gpu_capacty",
        "envs/dev",
        "Unsupported attribute",
    ),
    Mutation(
        "missing-required-argument",
        "modules/aws-model-cache/main.tf",
        'resource "aws_s3_bucket_versioning" "this" {\n  bucket = aws_s3_bucket.this.id\n',
        'resource "aws_s3_bucket_versioning" "this" {\n',
        "envs/dev",
        "Missing required argument",
    ),
    Mutation(
        "read-only-attribute-set",
        POOL,
        "instance_type          = var.instance_type",
        "instance_type          = var.instance_type\n  latest_version         = 3",
        "envs/dev",
        "read-only",
    ),
    Mutation(
        "bad-reference-in-dynamic-block",
        POOL,
        "version = launch_template.value.latest_version",
        "version = launch_template.value.latest_revision",
        "envs/prod",  # dev has spot pools only: the block is never expanded there
        "Unsupported attribute",
    ),
    Mutation(
        "for-each-over-unknown",
        POOL,
        "for_each = local.egress_rules",
        "for_each = toset([aws_security_group.this.id])",
        "envs/dev",
        "Invalid for_each argument",
    ),
    Mutation(
        "wrong-variable-type-from-stack",
        "stacks/aws/main.tf",
        "gpus_per_instance = each.value.gpus_per_instance",
        'gpus_per_instance = "eight"',
        "envs/dev",
        "Invalid value for input variable",
    ),
    Mutation(
        "null-for-a-required-module-variable",
        "stacks/aws/main.tf",
        "instance_type     = each.value.instance_type",
        "instance_type     = null",
        "envs/dev",
        "required variable\nmay not be set to null",
    ),
    Mutation(
        "validation-broken-by-tfvars",
        "modules/aws-gpu-pool/variables.tf",
        r'g[4-6][a-z0-9-]*|trn[12][a-z0-9-]*|inf[12][a-z0-9-]*)\\.[0-9a-z]+$", var.instance_type)',
        r'g[4-5][a-z0-9-]*|trn[12][a-z0-9-]*|inf[12][a-z0-9-]*)\\.[0-9a-z]+$", var.instance_type)',
        "envs/dev",
        "Invalid value for variable",
    ),
    Mutation(
        # egress is computed: a set of rule objects. Only the exact schema types catch this one.
        "computed-attribute-of-the-wrong-type",
        POOL,
        "security_groups             = [aws_security_group.this.id]",
        "security_groups             = aws_security_group.this.egress",
        "envs/dev",
        "Incorrect attribute value type",
    ),
    Mutation(
        "undeclared-resource-reference",
        POOL,
        "security_groups             = [aws_security_group.this.id]",
        "security_groups             = [aws_security_group.pool.id]",
        "envs/dev",
        "Reference to undeclared resource",
    ),
    Mutation(
        "misspelled-argument-gcp-template",
        "modules/gcp-gpu-pool/main.tf",
        "\n  machine_type = var.pool.machine_type\n",
        "\n  machine_typ = var.pool.machine_type\n",
        "envs/prod",
        "Unsupported argument",
    ),
    Mutation(
        "ec2-rejected-rule-description",
        POOL,
        '"All traffic between the nodes of the pool" : "TCP ${each.value.port} to',
        '"All traffic between the pool\'s nodes" : "TCP ${each.value.port} to',
        "envs/dev",
        "invalid description",
    ),
]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory, standin) -> dict[str, Root]:
    """One copy of infra/ for all mutations: dev and prod rendered and initialised once."""
    import os

    top = tmp_path_factory.mktemp("mutations")
    copy_infra(INFRA, top / "infra")
    roots = {}
    for rel in sorted({m.root for m in MUTATIONS}):
        render_env(top / "infra", rel.split("/", 1)[1])
        path = top / "infra" / rel
        local_backend(path)
        env = standin.environ({k: v for k, v in os.environ.items() if not k.startswith("TF_")})
        env["TF_DATA_DIR"] = str(top / f"tfdata-{path.name}")
        roots[rel] = Root(path, env)
        roots[rel].tf("init", "-input=false", "-no-color")
    return roots


def _validate_and_plan(root: Root) -> tuple[int, str]:
    """`terraform plan` validates the configuration first, so one command covers both."""
    proc = root.tf("plan", "-input=false", "-no-color", "-lock=false", ok=(0, 1))
    return proc.returncode, proc.stdout + proc.stderr


def test_untouched_copy_passes(copy: dict[str, Root]) -> None:
    for rel, root in copy.items():
        code, output = _validate_and_plan(root)
        assert code == 0, f"{rel}: {output[-4000:]}"


def test_at_least_ten_distinct_defects() -> None:
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS) >= 10


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_seeded_defect_fails(mutation: Mutation, copy: dict[str, Root]) -> None:
    path = copy[mutation.root].dir.parents[1] / mutation.file
    original = path.read_text()
    assert original.count(mutation.old) == 1, (
        f"{mutation.id}: the text to mutate is not in {mutation.file} once"
    )
    path.write_text(original.replace(mutation.old, mutation.new))
    try:
        code, output = _validate_and_plan(copy[mutation.root])
    finally:
        path.write_text(original)
    assert code != 0, f"{mutation.id}: validate and plan passed with the defect"
    assert mutation.expect in output, f"{mutation.id}: expected {mutation.expect!r} in\n{output[-3000:]}"

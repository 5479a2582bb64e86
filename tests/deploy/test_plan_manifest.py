"""The plan manifest's checks, and how terraform's errors are read (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from pyctl.core.plan_manifest import PlanManifest, inputs_digest, mismatches
from pyctl.deploy import lock_info
from pyctl.terraform import RunResult, TerraformFailed, _text_diagnostics

INPUTS = {"terraform.tfvars.json": "a" * 64, "backend.hcl": "b" * 64}
REVIEWED = PlanManifest(
    env="prod",
    plan_sha256="1" * 64,
    inputs_sha256=inputs_digest(INPUTS),
    lock_file_sha256="2" * 64,
    terraform_version="1.15.5",
    git_commit="0" * 40,
    inputs=INPUTS,
)


def changed(**fields):
    if "inputs" in fields:
        fields["inputs_sha256"] = inputs_digest(fields["inputs"])
    return dataclasses.replace(REVIEWED, **fields)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (changed(git_commit="f" * 40), []),  # the merge commit differs from the reviewed one: fine
        (changed(plan_sha256="9" * 64), ["plan file was modified after it was planned"]),
        (changed(env="staging"), ["plan was made for env 'prod', not 'staging'"]),
        (
            changed(inputs={**INPUTS, "backend.hcl": "c" * 64}),
            ["rendered inputs changed since planning: backend.hcl"],
        ),
        (
            changed(inputs={"backend.hcl": "b" * 64}),
            ["rendered inputs changed since planning: terraform.tfvars.json"],
        ),
        (
            changed(lock_file_sha256="3" * 64),
            [".terraform.lock.hcl changed since planning (provider versions or hashes)"],
        ),
        (
            changed(lock_file_sha256=None),
            [".terraform.lock.hcl changed since planning (provider versions or hashes) (missing here"],
        ),
        (
            changed(terraform_version="1.15.6"),
            ["terraform version differs: planned with 1.15.5, this is 1.15.6"],
        ),
        (
            changed(env="dev", terraform_version="1.9.0"),
            ["plan was made for env", "terraform version differs"],
        ),
    ],
)
def test_mismatches(current, expected):
    problems = mismatches(REVIEWED, current)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_inputs_digest_ignores_order_but_not_names():
    assert inputs_digest(dict(reversed(INPUTS.items()))) == inputs_digest(INPUTS)
    assert inputs_digest({"other.json": "a" * 64, "backend.hcl": "b" * 64}) != inputs_digest(INPUTS)


def test_manifest_round_trips_and_rejects_foreign_json():
    assert PlanManifest.from_json(REVIEWED.to_json()) == REVIEWED
    assert REVIEWED.to_json() == PlanManifest.from_json(REVIEWED.to_json()).to_json()
    with pytest.raises(ValueError, match="format_version"):
        PlanManifest.from_json('{"env": "prod"}')
    with pytest.raises(ValueError, match="unknown manifest keys: signature"):
        PlanManifest.from_json(REVIEWED.to_json().replace('"env"', '"signature": "x", "env"'))


LOCK_DETAIL = """Error message: operation error S3: PutObject, https response error StatusCode: 412
Lock Info:
  ID:        af2cbfe7-dbd5-8d29-b321-0b332042e3a7
  Path:      tfstate/prod/terraform.tfstate
  Operation: OperationTypeApply
  Who:       runner@ci-7
  Version:   1.15.5
  Created:   2026-11-22 07:16:23.706585679 +0000 UTC
  Info:

Terraform acquires a state lock to protect the state from being written"""


def test_lock_info_fields():
    info = lock_info(LOCK_DETAIL)
    assert info["ID"] == "af2cbfe7-dbd5-8d29-b321-0b332042e3a7"
    assert info["Who"] == "runner@ci-7"
    assert info["Operation"] == "OperationTypeApply"
    assert info["Created"] == "2026-11-22 07:16:23.706585679 +0000 UTC"


def test_text_diagnostics_are_read_from_terraforms_boxes():
    stderr = (
        "\x1b[31m╷\x1b[0m\n\x1b[31m│\x1b[0m \x1b[1m\x1b[31mError: \x1b[0mSaved plan is stale\n│ \n"
        "│ The given plan file can no longer be applied because the state was changed\n"
        "│ by another operation after the plan was created.\n╵\n"
        "Releasing state lock. This may take a few moments...\n"
    )
    (diag,) = _text_diagnostics(stderr)
    assert diag.summary == "Saved plan is stale"
    assert diag.detail == (
        "The given plan file can no longer be applied because the state was changed\n"
        "by another operation after the plan was created."
    )
    failed = TerraformFailed(RunResult(["-chdir=x", "apply", "p"], 1, "", stderr, [diag]))
    assert str(failed).startswith("terraform apply failed: Saved plan is stale: The given plan file")
    assert failed.exit_code == 1

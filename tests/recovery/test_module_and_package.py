"""The Terraform module grants what the code calls; the function zip runs the handler on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from pyctl.clouds.aws.recovery import IAM_ACTIONS, Recovery, iam_permissions
from pyctl.package import build_function_package
from tests.watchdog.tfviews import policy_document

from .conftest import AwsWorld, load_event

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "infra" / "modules" / "aws-spot-recovery"
# Granted although the code never names them: RunInstances passes the template's instance role, and
# GetObject on a bucket encrypted with a customer key needs kms:Decrypt.
IMPLIED = {"iam:PassRole", "kms:Decrypt"}
# IAM action names of API operations whose action is named differently.
ACTION_OF_OPERATION = {"s3:ListObjectsV2": "s3:ListBucket"}


# What the Lambda runtime provides besides the zip.
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def runtime_only_path(tmp_path: Path) -> Path:
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    deps = tmp_path / "runtime"
    deps.mkdir()
    for name in LAMBDA_RUNTIME_PACKAGES:
        (deps / name).symlink_to(site / name)
    return deps


def policy_actions(document: str) -> set[str]:
    docs = [policy_document(MODULE, document)]
    actions: set[str] = set()
    for statement in docs[0].get("statement", []):
        actions.update(statement["actions"])
    for dynamic in docs[0].get("dynamic", []):
        for content in (
            dynamic["statement"]["content"]
            if isinstance(dynamic["statement"]["content"], list)
            else [dynamic["statement"]["content"]]
        ):
            actions.update(content["actions"])
    return actions


def test_the_module_grants_exactly_what_the_code_declares() -> None:
    assert policy_actions("code") == set(IAM_ACTIONS) | IMPLIED
    per_verb = [a for verb in iam_permissions().values() for a in verb]
    assert sorted(per_verb) == sorted(set(per_verb)) == sorted(IAM_ACTIONS)  # each action under one verb


def test_the_code_calls_only_what_it_declares(aws: AwsWorld, tmp_path: Path) -> None:
    called: set[str] = set()

    def record(model: Any, **kwargs: Any) -> None:
        action = f"{model.service_model.signing_name}:{model.name}"
        called.add(ACTION_OF_OPERATION.get(action, action))

    for client in (aws.ec2, aws.dynamodb, aws.s3):
        client.meta.events.register("before-call", record)
    try:
        victim = aws.launch_job_instance()
        called.clear()
        recovery = Recovery(aws.config(), aws.ec2, aws.dynamodb, aws.s3)
        recovery.handle(load_event("spot_interruption_warning", victim))
        recovery.handle(load_event("state_change_terminated", victim))
    finally:
        for client in (aws.ec2, aws.dynamodb, aws.s3):
            client.meta.events.unregister("before-call", record)
    assert called <= set(IAM_ACTIONS), called - set(IAM_ACTIONS)
    assert {"ec2:RunInstances", "dynamodb:PutItem", "s3:ListBucket"} <= called


def test_the_built_zip_handles_a_real_event_on_its_own(aws: AwsWorld, tmp_path: Path) -> None:
    package = build_function_package("spot_recovery", tmp_path)
    names = zipfile.ZipFile(package.path).namelist()
    assert (
        "pyctl/functions/spot_recovery_aws.py" in names
        and "pyctl/core/checkpoint.py" in names
        and "pyctl/clouds/aws/recovery.py" in names
    )
    assert not any(n.startswith(("pyctl/agent/", "pyctl/commands/", "pyctl/cli")) for n in names)
    assert build_function_package("spot_recovery", tmp_path / "again").sha256_hex == package.sha256_hex

    victim = aws.launch_job_instance()
    event = load_event("spot_interruption_warning", victim)
    config = aws.config()
    env = {
        **os.environ,
        "PYTHONPATH": f"{package.path}{os.pathsep}{runtime_only_path(tmp_path)}",
        "PYCTL_RECOVERY_TABLE": aws.table,
        "PYCTL_RECOVERY_CONFIG": json.dumps(
            {
                "policy": {"max_interruptions": 3, "window_hours": 6, "cooldown_hours": 2},
                "jobs": {
                    job: {
                        "launch_template_id": t.launch_template_id,
                        "instance_types": list(t.instance_types),
                        "subnet_ids": list(t.subnet_ids),
                    }
                    for job, t in config.jobs.items()
                },
            }
        ),
    }
    code = (
        "import json, sys, pyctl; from pyctl.functions import spot_recovery_aws as handler;"
        f"assert pyctl.__file__.startswith({str(package.path)!r}), pyctl.__file__;"
        "result = handler.handler(json.load(sys.stdin), None);"
        "assert result['replacement']"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", code],  # -S: no site-packages, so no editable pyctl either
        input=json.dumps(event),
        env=env,
        cwd=tmp_path,  # not the repository: only the zip may provide pyctl
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    log_line = json.loads(run.stdout.strip().splitlines()[-1])
    assert log_line["action"] == "record-interruption" and log_line["detail_type"] == event["detail-type"]
    assert len(aws.job_instances()) == 2
